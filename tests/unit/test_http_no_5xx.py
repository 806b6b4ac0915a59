"""HTTP: no input answers a 5xx. Surrogates, NUL bytes, deep nesting and huge numbers in every
body and query parameter (tRPC ``input`` and signed webhooks included) are 4xx problems.

The last two tests throw generated JSON and query strings at every route of the app.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory import sign_fake_event

from .http_support import ADMIN, WEBHOOK_SECRET, Web, assert_problem, booking_body

CALCOM_SECRET = "calcom-webhook-secret-for-unit-tests"


@pytest.fixture
def web() -> Web:
    return Web(settings={"calcom_webhook_secret": CALCOM_SECRET}, offline_checkout=True)


def _raw(value: Any) -> bytes:
    """JSON text as a client may send it: lone surrogates as \\ud800 escapes."""
    return json.dumps(value, ensure_ascii=True).encode()


SURROGATE = "Ada\ud800"


@pytest.mark.parametrize(
    "body",
    [
        booking_body(client={"name": SURROGATE, "email": "ada@example.com"}),
        booking_body(client={"name": "Ada", "email": "ada\udfff@example.com"}),
        booking_body(client={"name": "Ada", "email": "ada@example.com", "phone": "\ud800"}),
        booking_body(notes=SURROGATE),
        booking_body(start="2030-01-08T09:00:00Z\ud800"),
        {**booking_body(), "\ud800": 1},
    ],
)
def test_a_lone_surrogate_in_a_booking_is_a_4xx(web: Web, body: dict[str, Any]) -> None:
    response = web.post_raw(_raw(body))
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert_problem(response, response.status_code)
    assert web.bookings() == []


def test_a_lone_surrogate_in_a_cancel_or_reschedule_reason_is_a_4xx(web: Web) -> None:
    created = web.booked()
    booking_id = created["booking"]["id"]
    for headers in ({"Authorization": f"Bearer {created['manage_token']}"}, ADMIN):
        for path in (
            f"/api/bookings/{booking_id}/cancel",
            f"/api/bookings/{booking_id}/reschedule",
            f"/api/admin/bookings/{booking_id}/cancel",
        ):
            response = web.post_raw(
                _raw({"reason": SURROGATE, "start": "2030-01-08T10:00:00Z"}),
                path=path,
                headers=headers,
            )
            assert 400 <= response.status_code < 500, (path, response.get_data(as_text=True))
    assert web.stored(booking_id).status.value == "pending"


@pytest.mark.parametrize(
    "query",
    [
        "/booking/success?session_id=a%00b",
        "/booking/cancel?session_id=a%00b",
        "/api/admin/bookings?email=a%00b",
        "/api/admin/bookings?email=%C2%85",
        "/api/practitioners/1/availability?from=2030-01-07%00",
        "/api/admin/jobs?status=%00",
        "/api/practitioners?x=%00",
    ],
)
def test_a_nul_or_control_character_in_a_query_is_a_422_naming_it(web: Web, query: str) -> None:
    response = web.client.get(query, headers=ADMIN)
    problem = assert_problem(response, 422, "validation_error")
    name = re.search(r"\?([a-z_]+)=", query)
    assert name is not None
    assert name.group(1) in problem["errors"]


def _trpc(web: Web, raw: str) -> Any:
    return web.client.get(f"/api/trpc/bookings.getAvailability?input={quote(raw)}")


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 5000 + "]" * 5000,
        '{"practitionerId":' + "[" * 3000 + "1" + "]" * 3000 + "}",
        '{"json":' * 100 + '{"practitionerId":1}' + "}" * 100,
        '{"practitionerId":1e400}',
        '{"practitionerId":' + "9" * 5000 + "}",
        '{"practitionerId":1,"from":"2030-01-07\\ud800"}',
        '{"practitionerId":1,"\\udfff":1}',
    ],
)
def test_hostile_trpc_input_is_a_422(web: Web, raw: str) -> None:
    problem = assert_problem(_trpc(web, raw), 422, "validation_error")
    assert problem["errors"]


def _stripe_event(amount: Any = 9000) -> bytes:
    return (
        b'{"id":"evt_x","object":"event","type":"checkout.session.completed","created":1,'
        b'"data":{"object":{"object":"checkout.session","id":"cs_x","payment_status":"paid",'
        b'"amount_total":' + str(amount).encode() + b',"currency":"gbp",'
        b'"metadata":{"booking_id":"1"},"client_reference_id":"1"}}}'
    )


HOSTILE_WEBHOOKS = [
    ("5000 nested arrays", b"[" * 5000 + b"]" * 5000),
    ("nested objects", b'{"a":' * 2000 + b"1" + b"}" * 2000),
    ("deep but small", b'{"id":"evt_1","data":' + b"[" * 40 + b"]" * 40 + b"}"),
    ("amount_total 1e400", _stripe_event("1e400")),
    ("amount_total NaN", _stripe_event("NaN")),
    ("amount_total -Infinity", _stripe_event("-Infinity")),
    ("amount_total 10^30", _stripe_event(10**30)),
    ("amount_total 5000 digits", _stripe_event("9" * 5000)),
    ("lone surrogate", _stripe_event().replace(b'"cs_x"', b'"cs_\\ud800"')),
]


@pytest.mark.parametrize(
    ("payload"), [p for _, p in HOSTILE_WEBHOOKS], ids=[n for n, _ in HOSTILE_WEBHOOKS]
)
def test_a_signed_hostile_stripe_webhook_is_400_invalid_payload(web: Web, payload: bytes) -> None:
    before = web.snapshot()
    assert_problem(web.webhook(payload), 400, "invalid_payload")
    assert web.snapshot() == before


@pytest.mark.parametrize(
    ("payload"), [p for _, p in HOSTILE_WEBHOOKS], ids=[n for n, _ in HOSTILE_WEBHOOKS]
)
def test_a_signed_hostile_calcom_webhook_is_400_invalid_payload(web: Web, payload: bytes) -> None:
    signature = hmac.new(CALCOM_SECRET.encode(), payload, hashlib.sha256).hexdigest()
    response = web.client.post(
        "/api/webhooks/calcom",
        data=payload,
        content_type="application/json",
        headers={"X-Cal-Signature-256": signature},
    )
    assert_problem(response, 400, "invalid_payload")


# -- generated input on every route -----------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(codec=None, categories=["L", "M", "N", "P", "S", "Z", "C"]),
    max_size=12,
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(2**63),
    st.just(2**31),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)
_FIELDS = [
    "practitioner_id",
    "service_id",
    "start",
    "client",
    "notes",
    "reason",
    "refund",
    "name",
    "email",
    "phone",
    "id",
    "type",
    "data",
    "object",
    "amount_total",
]


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


_BODIES = st.one_of(
    _JSON.map(lambda v: json.dumps(v, ensure_ascii=True)),
    st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=6).map(
        lambda v: json.dumps({**booking_body(), **v}, ensure_ascii=True)
    ),
    st.integers(min_value=20, max_value=6000).map(_deep),
    st.sampled_from(["1e400", "-1e400", "NaN", '{"a": Infinity}', "9" * 5000, "{", ""]),
)


def _query_text(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


_QUERY = st.dictionaries(
    st.sampled_from(
        [
            "service_id",
            "from",
            "to",
            "input",
            "status",
            "email",
            "limit",
            "offset",
            "practitioner_id",
            "session_id",
            "x",
        ]
    ),
    st.one_of(_TEXT, _NUMBERS.map(str), _BODIES),
    max_size=4,
)


def _routes(web: Web) -> list[tuple[str, str]]:
    routes = []
    for rule in web.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule))
    return sorted(routes)


_SEGMENTS = st.one_of(
    st.sampled_from(["1", "2", "01", str(2**31), str(2**63), "9" * 30, "\u0661", "1_0", "cs_1"]),
    _TEXT.filter(lambda t: t and "/" not in t and t not in (".", "..")),
)


def _fill(rule: str, segment: str) -> str:
    return re.sub(r"<[^>]+>", quote(segment.encode("utf-8", "surrogatepass"), safe=""), rule)


def _sign(path: str, payload: bytes) -> dict[str, str]:
    if path == "/api/webhooks/stripe":
        return {"Stripe-Signature": sign_fake_event(payload, WEBHOOK_SECRET)}
    if path == "/api/webhooks/calcom":
        return {
            "X-Cal-Signature-256": hmac.new(
                CALCOM_SECRET.encode(), payload, hashlib.sha256
            ).hexdigest()
        }
    return {}


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_bodies_and_queries_on_every_route_are_never_a_5xx(
    web: Web, data: st.DataObject
) -> None:
    method, rule = data.draw(st.sampled_from(_routes(web)), label="route")
    path = _fill(rule, data.draw(_SEGMENTS, label="segment"))
    query = "&".join(
        f"{_query_text(k)}={_query_text(v)}" for k, v in data.draw(_QUERY, label="query").items()
    )
    headers = dict(
        data.draw(st.sampled_from([{}, ADMIN, {"Authorization": "Bearer x"}]), label="auth")
    )
    if method == "GET":
        response = web.client.get(f"{path}?{query}", headers=headers)
    else:
        body = data.draw(_BODIES, label="body").encode("utf-8", "surrogatepass")
        headers.update(_sign(path, body))
        response = web.client.open(
            f"{path}?{query}",
            method=method,
            data=body,
            content_type="application/json",
            headers=headers,
        )
    if path.startswith("/auth/") and response.status_code == 503:
        # No OpenID provider is configured here: sign-in says so, whatever the input.
        assert response.get_json()["code"] == "signin_not_configured"
        return
    assert response.status_code < 500, (method, path, response.get_data(as_text=True))
