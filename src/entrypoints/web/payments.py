"""Payment views: the Stripe webhook, and the offline checkout that stands in for Stripe in dev."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, jsonify, redirect, render_template_string, request

from adapters.memory import FakePaymentGateway, sign_fake_event
from adapters.memory.gateways import FakeSession
from booking_core import usecases as uc
from booking_core.ports import CheckoutState, PaymentEventType
from entrypoints.web.common import check_webhook_body, deps
from entrypoints.web.openapi import HTML, WEBHOOK_RESPONSES, Header, operation, problem

bp = Blueprint("payments", __name__)
log = logging.getLogger(__name__)


@bp.post("/api/webhooks/stripe")
@operation(
    "Stripe events (signed with Stripe-Signature)",
    raw_body=True,
    headers=(Header(name="Stripe-Signature", description="t=<unix time>,v1=<HMAC-SHA256>",
                    required=True, schema={"type": "string", "minLength": 1}),),
    responses=WEBHOOK_RESPONSES,
)
def stripe_webhook() -> Response:
    """Verify the raw body's signature, apply the event once, answer 200 quickly.

    The body is read as bytes and never re-serialised (the signature covers the exact bytes).
    Nothing outbound happens here: refunds and calendar sync go to the outbox.
    """
    d = deps()
    payload = request.get_data(cache=False)
    signature = request.headers.get("Stripe-Signature")
    check_webhook_body(payload, signature)
    event = d.payments.parse_event(payload, signature)
    uc.handle_payment_event(event, uow=d.uow(), calendar=d.calendar, clock=d.clock, rules=d.rules)
    return jsonify(received=True)


# -- offline checkout (development only) ---------------------------------------------------------


def _fake_session(session_id: str) -> tuple[FakePaymentGateway, FakeSession]:
    """The offline gateway and one of its sessions; 404 in production or with real Stripe."""
    d = deps()
    if d.settings.is_production or not isinstance(d.payments, FakePaymentGateway):
        abort(404)
    session = d.payments.sessions.get(session_id)
    if session is None:
        abort(404)
    return d.payments, session


_CHECKOUT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Offline checkout</title>
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}
.card{border:1px solid #ccc;border-radius:8px;padding:1.5rem}
button{font-size:1rem;padding:.6rem 1.4rem;margin-right:.6rem;border-radius:6px;cursor:pointer}
.pay{background:#635bff;color:#fff;border:0}.note{color:#666;font-size:.9rem}</style></head>
<body><h1>Offline checkout</h1>
<div class="card">
<p><strong>{{ session.description }}</strong></p>
<p>Amount: <strong>{{ "%.2f"|format(session.amount.amount / 100) }}
{{ session.amount.currency|upper }}</strong></p>
<p>Email: {{ session.customer_email }}</p>
<p>Status: <strong id="state">{{ session.state.value }}</strong></p>
{% if session.state.value == "open" %}
<form method="post" action="{{ url_for('payments.dev_checkout_pay', session_id=session.id) }}"
 style="display:inline"><button class="pay" type="submit">Pay</button></form>
<form method="post" action="{{ url_for('payments.dev_checkout_cancel', session_id=session.id) }}"
 style="display:inline"><button type="submit">Cancel</button></form>
{% endif %}
</div>
<p class="note">This page stands in for Stripe Checkout because no STRIPE_SECRET_KEY is set.
Pay and Cancel send the same signed events Stripe would send to the webhook.</p>
</body></html>"""


_SESSION = {404: problem("not_found: no such offline checkout (or Stripe is configured)")}


@bp.get("/dev/checkout/<session_id>")
@operation(
    "Offline checkout page (development without a Stripe key)",
    responses={200: ("the checkout page", HTML), **_SESSION},
)
def dev_checkout(session_id: str) -> str:
    _, session = _fake_session(session_id)
    return render_template_string(_CHECKOUT_PAGE, session=session)


def _deliver(fake: FakePaymentGateway, session_id: str, event_type: str) -> str:
    """Sign an event as Stripe would and run it through the webhook's own path."""
    d = deps()
    payload = fake.event_for(session_id, event_type)
    event = d.payments.parse_event(payload, sign_fake_event(payload, fake.webhook_secret))
    return uc.handle_payment_event(
        event, uow=d.uow(), calendar=d.calendar, clock=d.clock, rules=d.rules
    )


@bp.post("/dev/checkout/<session_id>/pay")
@operation(
    "Offline checkout: pay",
    responses={303: ("to the success page", None), **_SESSION},
)
def dev_checkout_pay(session_id: str) -> Response:
    fake, session = _fake_session(session_id)
    if session.state is CheckoutState.OPEN:
        fake.complete(session_id)
        outcome = _deliver(fake, session_id, PaymentEventType.CHECKOUT_COMPLETED)
        log.info("offline checkout %s paid: %s", session_id, outcome)
    base = deps().settings.base_url
    return redirect(f"{base}/booking/success?session_id={session_id}", code=303)


@bp.post("/dev/checkout/<session_id>/cancel")
@operation(
    "Offline checkout: cancel",
    responses={303: ("to the cancel page", None), **_SESSION},
)
def dev_checkout_cancel(session_id: str) -> Response:
    fake, _ = _fake_session(session_id)
    if fake.expire_checkout(session_id) is CheckoutState.EXPIRED:
        _deliver(fake, session_id, PaymentEventType.CHECKOUT_EXPIRED)
    base = deps().settings.base_url
    return redirect(f"{base}/booking/cancel?session_id={session_id}", code=303)
