"""GET /metrics, and the request counting every route gets without declaring anything."""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, g, request

from booking_core import usecases as uc
from booking_core.errors import Unauthorized
from entrypoints import metrics
from entrypoints.web.common import bearer_token, deps
from entrypoints.web.openapi import operation, problem

bp = Blueprint("monitoring", __name__)

UNMATCHED = "unmatched"  # the route label of requests no URL rule matched (404, 405)


@bp.get("/metrics")
@operation(
    "Prometheus metrics (Bearer METRICS_TOKEN when it is set)",
    responses={
        200: ("text exposition format", ("text/plain", {"type": "string"})),
        401: problem("unauthorized"),
    },
    security=True,
)
def prometheus_metrics() -> Response:
    d = deps()
    expected = d.settings.metrics_token
    if expected:
        sent = bearer_token() or ""
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Unauthorized("send Authorization: Bearer <METRICS_TOKEN>")
    body = metrics.exposition(lambda: uc.operational_counts(uow=d.uow(), clock=d.clock))
    return Response(body, headers={"Content-Type": metrics.CONTENT_TYPE_LATEST})


def count_requests(app: Flask) -> None:
    """Count every answer by route template (the URL rule), method and status, and time it.

    Routes registered by any blueprint, now or later, are counted with nothing to declare.
    """

    @app.before_request
    def _start() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("metrics_started")
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED
        metrics.HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        if started is not None:
            metrics.HTTP_DURATION.labels(route).observe(time.perf_counter() - started)
        return response
