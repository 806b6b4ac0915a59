"""The offline checkout: a stand-in for Stripe Checkout when development runs without Stripe.

- ``OfflineCheckoutGateway`` is the PaymentGateway port with Stripe's semantics where the core
  relies on them (idempotency keys, expiring only an open session, refunds bounded by what was
  paid, signed webhook events with a 300 s tolerance either way).
- A session is made without a write: its id carries its booking, amount and expiry, signed
  with a key derived from the webhook secret (unguessable, never a counter). From its first
  move (paid, expired) it lives in PostgreSQL (``PostgresOfflineSessions``), so that it
  survives a restart and is seen by every worker process; ``InMemoryOfflineSessions`` has the
  same semantics for the unit tests. The page's client and service come from the booking.
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
from datetime import UTC, datetime, timedelta
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
    booking_id: int
    amount: Money
    expires_at: datetime
    state: CheckoutState = CheckoutState.OPEN
    payment_intent_id: str | None = None
    refunded: int = 0


class OfflineSessions(Protocol):
    """What became of offline sessions; every method is atomic on its own.

    Making a session stores nothing: the gateway signs what a session is (its booking, amount
    and expiry) into its id, as Stripe keeps a session on its side, not in our database. A
    session is stored from its first move on (paid, or expired), with what was refunded of it.
    """

    def find(self, session_id: str) -> OfflineSession | None:
        """The session as it was moved, or None while it is as it was made."""

    def move(
        self, session: OfflineSession, *, to: CheckoutState, payment_intent_id: str | None = None
    ) -> tuple[OfflineSession, bool]:
        """Move ``session`` (as made: open) to ``to`` unless it was moved before; returns the
        session as it is now and whether this call moved it."""

    def refund(
        self, key: str, payment_intent_id: str, amount: Money, refund_id: str
    ) -> tuple[str, Money, str]:
        """Record a refund once per key; returns (id, amount, payment intent) of the refund
        stored under ``key``. Raises RefundFailed when it would exceed what was paid or the
        payment is unknown."""


class InMemoryOfflineSessions:
    """Offline sessions in this process only (unit tests on memory adapters)."""

    def __init__(self) -> None:
        self._moved: dict[str, OfflineSession] = {}
        self._refunds: dict[str, tuple[str, Money, str]] = {}
        self._lock = threading.Lock()

    def find(self, session_id: str) -> OfflineSession | None:
        with self._lock:
            stored = self._moved.get(session_id)
            return attrs.evolve(stored) if stored is not None else None

    def move(
        self, session: OfflineSession, *, to: CheckoutState, payment_intent_id: str | None = None
    ) -> tuple[OfflineSession, bool]:
        with self._lock:
            stored = self._moved.get(session.id)
            if stored is not None:
                return attrs.evolve(stored), False
            moved = attrs.evolve(session, state=to, payment_intent_id=payment_intent_id)
            self._moved[session.id] = moved
            return attrs.evolve(moved), True

    def refund(
        self, key: str, payment_intent_id: str, amount: Money, refund_id: str
    ) -> tuple[str, Money, str]:
        with self._lock:
            if key in self._refunds:
                return self._refunds[key]
            paid = next(
                (s for s in self._moved.values() if s.payment_intent_id == payment_intent_id),
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
_MOVE = pg_insert(_SESSIONS).on_conflict_do_nothing(index_elements=["id"]).returning(*_SESSIONS.c)


class PostgresOfflineSessions:
    """Moved offline sessions in the ``offline_checkout_sessions`` / ``_refunds`` tables."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    @staticmethod
    def _session(row: Any) -> OfflineSession:
        return OfflineSession(
            id=row.id,
            booking_id=row.booking_id,
            amount=Money(row.amount, row.currency),
            expires_at=row.expires_at,
            state=CheckoutState(row.state),
            payment_intent_id=row.payment_intent_id,
            refunded=row.refunded_amount,
        )

    def find(self, session_id: str) -> OfflineSession | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(_SESSIONS).where(_SESSIONS.c.id == session_id)
            ).one_or_none()
        return self._session(row) if row is not None else None

    def move(
        self, session: OfflineSession, *, to: CheckoutState, payment_intent_id: str | None = None
    ) -> tuple[OfflineSession, bool]:
        values = {
            "id": session.id,
            "booking_id": session.booking_id,
            "amount": session.amount.amount,
            "currency": session.amount.currency,
            "expires_at": session.expires_at,
            "state": to.value,
            "payment_intent_id": payment_intent_id,
        }
        # One statement, atomic on its own: of two moves at once, one inserts, one finds it.
        with self._engine.connect() as plain:
            connection = plain.execution_options(autocommit_each=True)
            row = connection.execute(_MOVE, values).one_or_none()
            if row is not None:
                return self._session(row), True
            row = connection.execute(sa.select(_SESSIONS).where(_SESSIONS.c.id == session.id)).one()
        return self._session(row), False

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


SESSION_PREFIX = "cs_offline_"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _micros(instant: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp would round)."""
    return (instant - _EPOCH) // _MICROSECOND


def _instant(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


def _base36(number: int) -> str:
    if number < 0:
        raise ValueError("no negative numbers in a session id")
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _DIGITS[digit] + digits
        if number == 0:
            return digits


class OfflineCheckoutGateway:
    """The PaymentGateway port served by a local checkout page instead of Stripe.

    A session id carries what the session is, signed: ``cs_offline_<booking>_<amount>_
    <currency>_<expiry>_<key tag>_<signature>`` (numbers in base 36, the expiry in microseconds;
    the tag is a MAC of the idempotency key, the signature an HMAC-SHA256 of all that under a
    key derived from the webhook secret). Making a session is then no write at all, the same
    idempotency key gives the same session, and an id nobody signed is no session. Only a key
    reused with other parameters is not refused, as Stripe would: nothing was kept to compare
    with (the core never does it: its key names the booking and the instant of its hold).
    """

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
        self._signing_key = hmac.digest(
            webhook_secret.encode(), b"offline checkout sessions", "sha256"
        )

    def _mac(self, text: str) -> str:
        return hmac.new(self._signing_key, text.encode(), "sha256").hexdigest()

    def url_for(self, session_id: str) -> str:
        return f"{self.checkout_base_url}{CHECKOUT_PATH}/{session_id}"

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        expiry = _micros(request.expires_at)
        body = "_".join(
            (
                _base36(request.booking_id),
                _base36(request.amount.amount),
                request.amount.currency,
                _base36(expiry),
                self._mac(f"key|{request.idempotency_key}")[:16],
            )
        )
        session_id = f"{SESSION_PREFIX}{body}_{self._mac(body)[:32]}"
        return CheckoutSession(
            id=session_id, url=self.url_for(session_id), expires_at=_instant(expiry)
        )

    def session(self, session_id: str) -> OfflineSession | None:
        """The session named by ``session_id`` as it is now; None for an id this gateway did
        not sign."""
        if len(session_id) > 100 or not session_id.startswith(SESSION_PREFIX):
            return None
        body, _, signature = session_id[len(SESSION_PREFIX) :].rpartition("_")
        if not hmac.compare_digest(signature.encode(), self._mac(body)[:32].encode()):
            return None
        moved = self.sessions.find(session_id)
        if moved is not None:
            return moved
        booking_id, amount, currency, expiry, _tag = body.split("_")
        return OfflineSession(
            id=session_id,
            booking_id=int(booking_id, 36),
            amount=Money(int(amount, 36), currency),
            expires_at=_instant(int(expiry, 36)),
        )

    def form_secret(self, session_id: str) -> str:
        """What the session's Pay / Cancel forms post back (derived, never stored)."""
        return self._mac(f"form|{session_id}")

    def _move(
        self, session_id: str, to: CheckoutState, *, open_at: datetime | None = None
    ) -> tuple[OfflineSession | None, bool]:
        """Move an open session to ``to`` (only if unexpired at ``open_at`` when given)."""
        session = self.session(session_id)
        if session is None or session.state is not CheckoutState.OPEN:
            return session, False
        if open_at is not None and open_at >= session.expires_at:
            return session, False
        intent = _random_id("pi") if to is CheckoutState.COMPLETE else None
        return self.sessions.move(session, to=to, payment_intent_id=intent)

    def expire_checkout(self, session_id: str) -> CheckoutState:
        session, _ = self._move(session_id, CheckoutState.EXPIRED)
        if session is None:
            raise CheckoutNotFound("no such offline checkout session")
        return session.state

    def retrieve_checkout(self, session_id: str) -> CheckoutInfo:
        session = self.session(session_id)
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
        if not form_secret:
            return None
        session = self.session(session_id)
        if session is None or not hmac.compare_digest(
            self.form_secret(session_id).encode(), form_secret.encode("utf-8", "replace")
        ):
            return None
        return session

    def pay(self, session_id: str) -> bool:
        """The customer pays an open, unexpired session; True when this call paid it."""
        _, paid = self._move(session_id, CheckoutState.COMPLETE, open_at=self.clock.now())
        return paid

    def cancel(self, session_id: str) -> bool:
        """The customer leaves the checkout: an open session expires; True when this call did."""
        _, expired = self._move(session_id, CheckoutState.EXPIRED)
        return expired

    def signed_event(self, session_id: str, event_type: str) -> tuple[bytes, str]:
        """The event Stripe would send for the session now, and its signature header."""
        session = self.session(session_id)
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
<p>Email: {{ email }}</p>
<p>Status: <strong id="state">{{ session.state.value }}</strong></p>
{% if session.state.value == "open" %}
<form method="post" action="{{ url_for('offline_checkout.pay', session_id=session.id) }}">
<input type="hidden" name="secret" value="{{ secret }}">
<button class="pay" type="submit">Pay</button></form>
<form method="post" action="{{ url_for('offline_checkout.cancel', session_id=session.id) }}">
<input type="hidden" name="secret" value="{{ secret }}">
<button type="submit">Cancel</button></form>
{% endif %}
</div>
<p class="note">This page stands in for Stripe Checkout because no STRIPE_SECRET_KEY is set
(development). Pay and Cancel send the same signed events Stripe would send to the webhook.</p>
</body></html>"""


def _details(session: OfflineSession) -> dict[str, str]:
    """What is being paid for and when: the start in the practitioner's own time zone."""
    d = deps()
    details = {
        "service": f"Booking {session.booking_id}",
        "practitioner": "",
        "when": "",
        "email": "",
    }
    booking = uc.find_booking_by_checkout(session.id, uow=d.uow())
    if booking is None:
        return details
    details["email"] = booking.client.email
    try:
        practitioner = uc.get_practitioner(booking.practitioner_id, uow=d.uow())
    except BookingError:
        return details
    service = practitioner.service(booking.service_id)
    local = booking.start.astimezone(practitioner.zone)
    details.update(
        service=service.name if service is not None else details["service"],
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
    gateway = _gateway()
    session = gateway.session(session_id)
    if session is None:
        abort(404)
    return render_template_string(
        _PAGE,
        session=session,
        secret=gateway.form_secret(session_id),
        amount=format_money(session.amount),
        **_details(session),
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
