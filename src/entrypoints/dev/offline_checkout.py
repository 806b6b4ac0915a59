"""The offline checkout: a stand-in for Stripe Checkout when development runs without Stripe.

- ``OfflineCheckoutGateway`` is the PaymentGateway port with Stripe's semantics where the core
  relies on them (idempotency keys, expiring only an open session, refunds bounded by what was
  paid, signed webhook events with a 300 s tolerance either way).
- Its sessions live in PostgreSQL (``PostgresOfflineSessions``) so that they survive a restart
  and are seen by every worker process; ``InMemoryOfflineSessions`` has the same semantics for
  the unit tests. Session ids are random (``secrets``), never a counter.
- ``register(app, gateway)`` adds the checkout page and its Pay / Cancel actions; the app factory
  calls it only when this gateway is the live one. Pay and Cancel post the session's own form
  secret, and drive the same payment-event use case as Stripe's webhook, with an event signed
  and parsed as the webhook's would be.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from datetime import datetime
from typing import Any, Protocol, cast

import attrs
import sqlalchemy as sa
from attrs import define
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    redirect,
    render_template_string,
    request,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from werkzeug.wrappers import Response as WerkzeugResponse

from adapters.postgres.rows import OfflineCheckoutRefundRow, OfflineCheckoutSessionRow
from adapters.stripe.events import (
    checkout_session_event,
    parse_stripe_event,
    sign_payload,
    verify_signature,
)
from booking_core import usecases as uc
from booking_core.errors import (
    BookingError,
    CheckoutNotFound,
    DuplicateRequest,
    InvalidPayload,
    PaymentUnavailable,
    RefundFailed,
)
from booking_core.model import Money
from booking_core.ports import (
    CheckoutInfo,
    CheckoutRequest,
    CheckoutSession,
    CheckoutState,
    Clock,
    PaymentEvent,
    PaymentEventType,
    RefundRequest,
    RefundResult,
)
from entrypoints.web.common import deps
from entrypoints.web.openapi import HTML, operation, problem
from entrypoints.web.pages import money_text

log = logging.getLogger(__name__)

WEBHOOK_TOLERANCE_SECONDS = 300
CHECKOUT_PATH = "/dev/checkout"

# ``90.00 GBP``, ``1200 JPY``, ``1.500 KWD``: the amount as the pages show it.
format_money = money_text


# -- sessions --------------------------------------------------------------------------------------


@define(kw_only=True)
class OfflineSession:
    id: str
    form_secret: str
    idempotency_key: str
    booking_id: int
    amount: Money
    description: str
    customer_email: str
    expires_at: datetime
    state: CheckoutState = CheckoutState.OPEN
    payment_intent_id: str | None = None
    refunded: int = 0


class OfflineSessions(Protocol):
    """Where offline sessions and refunds are kept; every method is atomic on its own."""

    def add(self, session: OfflineSession) -> OfflineSession:
        """Store ``session``, or return the one already stored under its idempotency key."""

    def get(self, session_id: str) -> OfflineSession | None: ...

    def move(
        self,
        session_id: str,
        *,
        to: CheckoutState,
        payment_intent_id: str | None = None,
        open_at: datetime | None = None,
    ) -> tuple[OfflineSession | None, bool]:
        """Move an OPEN session to ``to`` (only if still open, and unexpired at ``open_at``
        when given); returns the session as it is now and whether this call moved it."""

    def refund(
        self, key: str, payment_intent_id: str, amount: Money, refund_id: str
    ) -> tuple[str, Money, str]:
        """Record a refund once per key; returns (id, amount, payment intent) of the refund
        stored under ``key``. Raises RefundFailed when it would exceed what was paid or the
        payment is unknown."""


class InMemoryOfflineSessions:
    """Offline sessions in this process only (unit tests on memory adapters)."""

    def __init__(self) -> None:
        self._sessions: dict[str, OfflineSession] = {}
        self._refunds: dict[str, tuple[str, Money, str]] = {}
        self._lock = threading.Lock()

    def add(self, session: OfflineSession) -> OfflineSession:
        with self._lock:
            for stored in self._sessions.values():
                if stored.idempotency_key == session.idempotency_key:
                    return attrs.evolve(stored)
            self._sessions[session.id] = attrs.evolve(session)
            return attrs.evolve(session)

    def get(self, session_id: str) -> OfflineSession | None:
        with self._lock:
            stored = self._sessions.get(session_id)
            return attrs.evolve(stored) if stored is not None else None

    def move(
        self,
        session_id: str,
        *,
        to: CheckoutState,
        payment_intent_id: str | None = None,
        open_at: datetime | None = None,
    ) -> tuple[OfflineSession | None, bool]:
        with self._lock:
            stored = self._sessions.get(session_id)
            if stored is None:
                return None, False
            moved = stored.state is CheckoutState.OPEN and (
                open_at is None or open_at < stored.expires_at
            )
            if moved:
                stored.state = to
                stored.payment_intent_id = payment_intent_id or stored.payment_intent_id
            return attrs.evolve(stored), moved

    def refund(
        self, key: str, payment_intent_id: str, amount: Money, refund_id: str
    ) -> tuple[str, Money, str]:
        with self._lock:
            if key in self._refunds:
                return self._refunds[key]
            paid = next(
                (s for s in self._sessions.values() if s.payment_intent_id == payment_intent_id),
                None,
            )
            _check_refund(paid, amount).refunded += amount.amount
            self._refunds[key] = (refund_id, amount, payment_intent_id)
            return self._refunds[key]


def _check_refund(paid: OfflineSession | None, amount: Money) -> OfflineSession:
    if paid is None or paid.state is not CheckoutState.COMPLETE:
        raise RefundFailed("no such payment to refund")
    if amount.currency != paid.amount.currency:
        raise RefundFailed("refund currency differs from the payment's")
    if paid.refunded + amount.amount > paid.amount.amount:
        raise RefundFailed("refund exceeds the amount paid")
    return paid


_SESSIONS = cast(sa.Table, OfflineCheckoutSessionRow.__table__)
_REFUNDS = cast(sa.Table, OfflineCheckoutRefundRow.__table__)
_ADD_SESSION = (
    pg_insert(_SESSIONS)
    .on_conflict_do_nothing(index_elements=["idempotency_key"])
    .returning(*_SESSIONS.c)
)


class PostgresOfflineSessions:
    """Offline sessions in the ``offline_checkout_sessions`` / ``_refunds`` tables (0002)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    @staticmethod
    def _session(row: Any) -> OfflineSession:
        return OfflineSession(
            id=row.id,
            form_secret=row.form_secret,
            idempotency_key=row.idempotency_key,
            booking_id=row.booking_id,
            amount=Money(row.amount, row.currency),
            description=row.description,
            customer_email=row.customer_email,
            expires_at=row.expires_at,
            state=CheckoutState(row.state),
            payment_intent_id=row.payment_intent_id,
            refunded=row.refunded_amount,
        )

    def add(self, session: OfflineSession) -> OfflineSession:
        values = {
            "id": session.id,
            "form_secret": session.form_secret,
            "idempotency_key": session.idempotency_key,
            "booking_id": session.booking_id,
            "amount": session.amount.amount,
            "currency": session.amount.currency,
            "description": session.description,
            "customer_email": session.customer_email,
            "expires_at": session.expires_at,
            "state": session.state.value,
        }
        # One statement, atomic on its own: no BEGIN and COMMIT round trips around it.
        with self._engine.connect() as plain:
            connection = plain.execution_options(autocommit_each=True)
            row = connection.execute(_ADD_SESSION, values).one_or_none()
            if row is None:  # the key was used before: answer with its first session
                row = connection.execute(
                    sa.select(_SESSIONS).where(
                        _SESSIONS.c.idempotency_key == session.idempotency_key
                    )
                ).one()
        return self._session(row)

    def get(self, session_id: str) -> OfflineSession | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(_SESSIONS).where(_SESSIONS.c.id == session_id)
            ).one_or_none()
        return self._session(row) if row is not None else None

    def move(
        self,
        session_id: str,
        *,
        to: CheckoutState,
        payment_intent_id: str | None = None,
        open_at: datetime | None = None,
    ) -> tuple[OfflineSession | None, bool]:
        condition = sa.and_(_SESSIONS.c.id == session_id, _SESSIONS.c.state == "open")
        if open_at is not None:
            condition = sa.and_(condition, _SESSIONS.c.expires_at > open_at)
        values: dict[str, Any] = {"state": to.value}
        if payment_intent_id is not None:
            values["payment_intent_id"] = payment_intent_id
        with self._engine.begin() as connection:
            moved = connection.execute(
                sa.update(_SESSIONS).where(condition).values(values).returning(_SESSIONS)
            ).one_or_none()
            if moved is not None:
                return self._session(moved), True
            row = connection.execute(
                sa.select(_SESSIONS).where(_SESSIONS.c.id == session_id)
            ).one_or_none()
        return (self._session(row) if row is not None else None), False

    def refund(
        self, key: str, payment_intent_id: str, amount: Money, refund_id: str
    ) -> tuple[str, Money, str]:
        with self._engine.begin() as connection:
            paid_row = connection.execute(
                sa.select(_SESSIONS)
                .where(_SESSIONS.c.payment_intent_id == payment_intent_id)
                .with_for_update()  # one refund at a time per payment, as Stripe serialises
            ).one_or_none()
            existing = connection.execute(
                sa.select(_REFUNDS).where(_REFUNDS.c.idempotency_key == key)
            ).one_or_none()
            if existing is not None:
                return (
                    existing.id,
                    Money(existing.amount, existing.currency),
                    existing.payment_intent_id,
                )
            paid = self._session(paid_row) if paid_row is not None else None
            _check_refund(paid, amount)
            connection.execute(
                sa.update(_SESSIONS)
                .where(_SESSIONS.c.payment_intent_id == payment_intent_id)
                .values(refunded_amount=_SESSIONS.c.refunded_amount + amount.amount)
            )
            connection.execute(
                sa.insert(_REFUNDS).values(
                    idempotency_key=key,
                    id=refund_id,
                    payment_intent_id=payment_intent_id,
                    amount=amount.amount,
                    currency=amount.currency,
                )
            )
        return refund_id, amount, payment_intent_id


# -- the gateway -----------------------------------------------------------------------------------


def _random_id(prefix: str) -> str:
    return f"{prefix}_offline_{secrets.token_hex(16)}"


class OfflineCheckoutGateway:
    """The PaymentGateway port served by a local checkout page instead of Stripe."""

    def __init__(
        self,
        *,
        sessions: OfflineSessions,
        checkout_base_url: str,
        webhook_secret: str,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.checkout_base_url = checkout_base_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.clock = clock

    def url_for(self, session_id: str) -> str:
        return f"{self.checkout_base_url}{CHECKOUT_PATH}/{session_id}"

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        wanted = OfflineSession(
            id=_random_id("cs"),
            form_secret=secrets.token_urlsafe(32),
            idempotency_key=request.idempotency_key,
            booking_id=request.booking_id,
            amount=request.amount,
            description=request.description,
            customer_email=request.customer_email,
            expires_at=request.expires_at,
        )
        stored = self.sessions.add(wanted)
        same_request = (
            stored.booking_id,
            stored.amount,
            stored.customer_email,
            stored.expires_at,
        ) == (request.booking_id, request.amount, request.customer_email, request.expires_at)
        if not same_request:
            raise DuplicateRequest(
                f"idempotency key {request.idempotency_key!r} reused with other parameters"
            )
        return CheckoutSession(
            id=stored.id, url=self.url_for(stored.id), expires_at=stored.expires_at
        )

    def expire_checkout(self, session_id: str) -> CheckoutState:
        session, _ = self.sessions.move(session_id, to=CheckoutState.EXPIRED)
        if session is None:
            raise CheckoutNotFound("no such offline checkout session")
        return session.state

    def retrieve_checkout(self, session_id: str) -> CheckoutInfo:
        session = self.sessions.get(session_id)
        if session is None:
            raise CheckoutNotFound("no such offline checkout session")
        paid = session.state is CheckoutState.COMPLETE
        return CheckoutInfo(
            id=session.id,
            state=session.state,
            booking_id=session.booking_id,
            payment_status="paid" if paid else "unpaid",
            amount=session.amount,
            payment_intent_id=session.payment_intent_id,
        )

    def recent_events(self, created_after: datetime, *, limit: int = 1000) -> list[PaymentEvent]:
        """Nothing to recover: Pay and Cancel apply their event in the same request, so no
        event of the offline checkout can be missed the way a webhook delivery can."""
        return []

    def refund(self, request: RefundRequest) -> RefundResult:
        refund_id, amount, intent = self.sessions.refund(
            request.idempotency_key, request.payment_intent_id, request.amount, _random_id("re")
        )
        if (amount, intent) != (request.amount, request.payment_intent_id):
            raise DuplicateRequest("idempotency key reused with other refund parameters")
        return RefundResult(id=refund_id, amount=amount, status="succeeded")

    def parse_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        verify_signature(
            payload, signature, self.webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
        )
        try:
            return parse_stripe_event(json.loads(payload))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise InvalidPayload("webhook body is not a valid event") from exc

    # -- what the checkout page does ---------------------------------------------------------------

    def authorised(self, session_id: str, form_secret: str) -> OfflineSession | None:
        """The session when ``form_secret`` is its own (compared in constant time)."""
        if len(session_id) > 100 or not form_secret:
            return None
        session = self.sessions.get(session_id)
        if session is None or not hmac.compare_digest(
            session.form_secret.encode(), form_secret.encode("utf-8", "replace")
        ):
            return None
        return session

    def pay(self, session_id: str) -> bool:
        """The customer pays an open, unexpired session; True when this call paid it."""
        _, paid = self.sessions.move(
            session_id,
            to=CheckoutState.COMPLETE,
            payment_intent_id=_random_id("pi"),
            open_at=self.clock.now(),
        )
        return paid

    def cancel(self, session_id: str) -> bool:
        """The customer leaves the checkout: an open session expires; True when this call did."""
        _, expired = self.sessions.move(session_id, to=CheckoutState.EXPIRED)
        return expired

    def signed_event(self, session_id: str, event_type: str) -> tuple[bytes, str]:
        """The event Stripe would send for the session now, and its signature header."""
        session = self.sessions.get(session_id)
        if session is None:
            raise PaymentUnavailable("no such offline checkout session")
        payload = checkout_session_event(
            event_id=_random_id("evt"),
            event_type=event_type,
            session_id=session.id,
            booking_id=session.booking_id,
            amount=session.amount,
            status=session.state.value,
            payment_intent_id=session.payment_intent_id,
        )
        return payload, sign_payload(payload, self.webhook_secret)


# -- the pages -------------------------------------------------------------------------------------

bp = Blueprint("offline_checkout", __name__)
EXTENSION = "offline_checkout"


def register(app: Flask, gateway: OfflineCheckoutGateway) -> None:
    """Serve the offline checkout from ``app`` (called by the app factory in development)."""
    app.extensions[EXTENSION] = gateway
    app.register_blueprint(bp)


def _gateway() -> OfflineCheckoutGateway:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Offline checkout</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/pages.css"></head>
<body><h1>Offline checkout</h1>
<div class="card">
<p><strong id="service">{{ service }}</strong> with <strong id="practitioner">{{ practitioner }}
</strong></p>
<p>When: <strong id="when">{{ when }}</strong></p>
<p>Amount: <strong id="amount">{{ amount }}</strong></p>
<p>Email: {{ session.customer_email }}</p>
<p>Status: <strong id="state">{{ session.state.value }}</strong></p>
{% if session.state.value == "open" %}
<form method="post" action="{{ url_for('offline_checkout.pay', session_id=session.id) }}">
<input type="hidden" name="secret" value="{{ session.form_secret }}">
<button class="pay" type="submit">Pay</button></form>
<form method="post" action="{{ url_for('offline_checkout.cancel', session_id=session.id) }}">
<input type="hidden" name="secret" value="{{ session.form_secret }}">
<button type="submit">Cancel</button></form>
{% endif %}
</div>
<p class="note">This page stands in for Stripe Checkout because no STRIPE_SECRET_KEY is set
(development). Pay and Cancel send the same signed events Stripe would send to the webhook.</p>
</body></html>"""


def _details(session: OfflineSession) -> dict[str, str]:
    """What is being paid for and when: the start in the practitioner's own time zone."""
    d = deps()
    details = {"service": session.description, "practitioner": "", "when": ""}
    booking = uc.find_booking_by_checkout(session.id, uow=d.uow())
    if booking is None:
        return details
    try:
        practitioner = uc.get_practitioner(booking.practitioner_id, uow=d.uow())
    except BookingError:
        return details
    service = practitioner.service(booking.service_id)
    local = booking.start.astimezone(practitioner.zone)
    details.update(
        service=service.name if service is not None else session.description,
        practitioner=practitioner.name,
        when=f"{local:%A %d %B %Y, %H:%M} ({practitioner.zone.key})",
    )
    return details


_UNKNOWN = {404: problem("not_found: no such session, or not its secret")}
# The Pay / Cancel forms post the session's own secret (from its page).
_SECRET_FORM = {
    "type": "object",
    "required": ["secret"],
    "properties": {"secret": {"type": "string", "minLength": 1}},
}


@bp.get(f"{CHECKOUT_PATH}/<session_id>")
@operation(
    "Offline checkout page (development without a Stripe key)",
    responses={200: ("the checkout page", HTML), **_UNKNOWN},
)
def page(session_id: str) -> str:
    session = _gateway().sessions.get(session_id) if len(session_id) <= 100 else None
    if session is None:
        abort(404)
    return render_template_string(
        _PAGE, session=session, amount=format_money(session.amount), **_details(session)
    )


def _deliver(gateway: OfflineCheckoutGateway, session_id: str, event_type: str) -> str:
    """Run the event Stripe would send through the webhook's own parsing and use case."""
    d = deps()
    payload, signature = gateway.signed_event(session_id, event_type)
    event = gateway.parse_event(payload, signature)
    return uc.handle_payment_event(
        event, uow=d.uow(), calendar=d.calendar, clock=d.clock, rules=d.rules
    )


def _authorised(session_id: str) -> OfflineCheckoutGateway:
    gateway = _gateway()
    if gateway.authorised(session_id, request.form.get("secret", "")) is None:
        abort(404)
    return gateway


@bp.post(f"{CHECKOUT_PATH}/<session_id>/pay")
@operation(
    "Offline checkout: pay",
    form=_SECRET_FORM,
    responses={303: ("to the success page", None), **_UNKNOWN},
)
def pay(session_id: str) -> WerkzeugResponse:
    gateway = _authorised(session_id)
    base = gateway.checkout_base_url
    if gateway.pay(session_id):
        outcome = _deliver(gateway, session_id, PaymentEventType.CHECKOUT_COMPLETED)
        log.info("offline checkout paid: %s", outcome)
    elif gateway.cancel(session_id):
        # Still open but past its expiry: Stripe would have expired it and said so.
        _deliver(gateway, session_id, PaymentEventType.CHECKOUT_EXPIRED)
        return redirect(f"{base}/booking/cancel?session_id={session_id}", code=303)
    return redirect(f"{base}/booking/success?session_id={session_id}", code=303)


@bp.post(f"{CHECKOUT_PATH}/<session_id>/cancel")
@operation(
    "Offline checkout: cancel",
    form=_SECRET_FORM,
    responses={303: ("to the cancel page", None), **_UNKNOWN},
)
def cancel(session_id: str) -> WerkzeugResponse:
    gateway = _authorised(session_id)
    if gateway.cancel(session_id):
        _deliver(gateway, session_id, PaymentEventType.CHECKOUT_EXPIRED)
    base = gateway.checkout_base_url
    return redirect(f"{base}/booking/cancel?session_id={session_id}", code=303)
