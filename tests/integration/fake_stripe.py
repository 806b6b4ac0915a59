"""A local fake Stripe HTTP server: the real stripe SDK talks to it through ``api_base``.

Stripe publishes no stateful mock we can run here (stripe-mock is stateless and needs
Go), so this keeps the few behaviours our adapter relies on, in
Stripe's wire format:

- ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions/{id}``,
  ``POST /v1/checkout/sessions/{id}/expire`` (only while open, else a 400 as Stripe answers),
  ``POST /v1/refunds`` (never more than is left of the payment), ``GET /v1/refunds/{id}``;
- ``GET /v1/events`` (newest first, ``created[gt|gte|lt|lte]``, ``type``, ``types[]``, ``limit``,
  ``starting_after``, ``has_more``): every event body the helpers below make is listed, as Stripe
  lists every event it creates whether or not a webhook received it;
- ``forget_session``: the session answers 404 from then on (another key or account);
- form bodies decoded from Stripe's nested encoding (``line_items[0][price_data][currency]``);
- idempotency keys: the same key and parameters replay the first answer (with
  ``Idempotent-Replayed: true``), the same key with other parameters is a 400 idempotency_error;
- Stripe's JSON shapes for objects and errors, a ``Request-Id`` on every answer;
- faults on demand: answer 500 (or any status), hang (to trip the client's timeout), for the next
  N calls or until told otherwise, optionally only for one path.

Every request is recorded (method, path, headers, decoded form) for assertions. Helpers play the
customer (``pay``) and build webhook bodies (``session_event``, ``refund_event``) that tests sign
with ``stripe.WebhookSignature.generate_signature_header`` (``sign``).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import stripe

API_VERSION = "2026-10-28.endive"  # what stripe 16.1 pins and sends as Stripe-Version
MIN_EXPIRY = 30 * 60  # Checkout's expires_at: 30 minutes ...
MAX_EXPIRY = 24 * 60 * 60  # ... to 24 hours after creation
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def decode_form(body: str) -> dict[str, Any]:
    """Rebuild Stripe's nested form encoding into dicts and lists; every leaf stays a string.

    ``a[b][0][c]=v`` becomes ``{"a": {"b": [{"c": "v"}]}}``: a level whose keys are exactly
    0..n-1 becomes a list (the SDK always indexes lists).
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        match = _KEY.match(key)
        if match is None:
            raise ValueError(f"not a Stripe form key: {key!r}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"form key {key!r} clashes with a scalar")
            node = child
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and sorted(items) == [str(i) for i in range(len(items))]:
        return [items[str(i)] for i in range(len(items))]
    return items


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]  # names lower-cased
    form: dict[str, Any]
    body: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def idempotency_key(self) -> str | None:
        return self.header("Idempotency-Key")


@dataclass
class _Fault:
    kind: str  # "status" | "hang"
    remaining: int | None  # None: until cleared
    status: int = 500
    seconds: float = 0.0
    path: str | None = None  # only requests whose path starts with this

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


@dataclass
class _Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class StripeApiError(Exception):
    """Raised inside a route to answer with Stripe's error JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        store: bool = False,
    ) -> None:
        super().__init__(message)
        error: dict[str, Any] = {"type": type_, "message": message}
        if code:
            error["code"] = code
        if param:
            error["param"] = param
        self.answer = _Answer(status, {"error": error})
        # Stripe saves an idempotent result only once the endpoint began executing: parameter
        # validation failures are not saved, refusals by the business logic are.
        self.store = store


def _missing(param: str) -> StripeApiError:
    return StripeApiError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def _invalid(param: str, message: str) -> StripeApiError:
    return StripeApiError(400, message, code="parameter_invalid", param=param)


def _integer(form: dict[str, Any], param: str, *, required: bool = True) -> int | None:
    raw = form.get(param)
    if raw is None:
        if required:
            raise _missing(param)
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise StripeApiError(
            400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=param
        )
    return int(raw)


class FakeStripe:
    """The fake server; use as a context manager (or ``start()`` / ``stop()``).

    ``url`` is what the SDK gets as ``api_base``. ``now`` gives the server's clock in epoch seconds
    (set it to the test's clock so ``expires_at`` checks agree with the core's idea of now).
    ``api_key`` set: any other bearer key gets a 401 as Stripe answers.
    """

    def __init__(self, *, api_key: str | None = None, now: Callable[[], float] = time.time) -> None:
        self.api_key = api_key
        self.now = now
        self.requests: list[RecordedRequest] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.refund_status = "succeeded"  # what new refunds report (e.g. "pending")
        self._session_extras: dict[str, dict[str, Any]] = {}
        self._idempotent: dict[str, tuple[tuple[str, str, str], _Answer]] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._release = threading.Event()  # wakes hanging handlers at stop()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.fake = self  # type: ignore[attr-defined]
        server.daemon_threads = False  # server_close() joins the handler threads
        server.handle_error = _ignore_disconnects(server.handle_error)  # type: ignore[method-assign]
        self._server = server
        self._release.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-stripe"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Stripe server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- faults ----------------------------------------------------------------------------------

    def fail_next(self, times: int = 1, *, status: int = 500, path: str | None = None) -> None:
        """Answer the next ``times`` requests (under ``path``) with ``status`` and Stripe's error.

        Injected failures happen before Stripe's idempotency layer: nothing is saved for the key,
        so a retry with the same key gets a real answer.
        """
        with self._lock:
            self._faults.append(_Fault("status", times, status=status, path=path))

    def fail_always(self, *, status: int = 500, path: str | None = None) -> None:
        """Answer every request (under ``path``) with ``status`` until ``heal()``."""
        with self._lock:
            self._faults.append(_Fault("status", None, status=status, path=path))

    def hang_next(self, times: int = 1, *, seconds: float = 5.0, path: str | None = None) -> None:
        """Wait ``seconds`` before handling the next ``times`` requests (a slow Stripe).

        The request is then handled as usual, as Stripe would: a client that gave up may still
        have created the object. ``stop()`` ends every wait at once.
        """
        with self._lock:
            self._faults.append(_Fault("hang", times, seconds=seconds, path=path))

    def heal(self) -> None:
        """Forget every injected fault."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    # -- inspection ------------------------------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path is ``path`` (a trailing ``*``: prefix)."""
        with self._lock:
            found = list(self.requests)
        if path.endswith("*"):
            return [r for r in found if r.method == method and r.path.startswith(path[:-1])]
        return [r for r in found if r.method == method and r.path == path]

    def session(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self.sessions[session_id]))  # type: ignore[no-any-return]

    # -- playing the customer and Stripe's clock ---------------------------------------------------

    def pay(
        self, session_id: str, *, delayed: bool = False, amount_total: int | None = None
    ) -> dict[str, Any]:
        """The customer completes the hosted checkout; returns the session as Stripe would.

        ``delayed``: a bank debit or similar, the session completes unpaid and ``settle`` decides
        later. ``amount_total`` overrides what was charged (to simulate a mismatch).
        """
        with self._lock:
            session = self.sessions[session_id]
            if session["status"] != "open":
                raise ValueError(f"checkout session {session_id} is {session['status']}, not open")
            if amount_total is not None:
                session["amount_total"] = amount_total
            intent_id = f"pi_{self._token()}"
            self.payment_intents[intent_id] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": session["amount_total"],
                "amount_received": 0 if delayed else session["amount_total"],
                "currency": session["currency"],
                "latest_charge": f"ch_{self._token()}",
                "metadata": dict(self._session_extras[session_id]["payment_intent_metadata"]),
                "status": "processing" if delayed else "succeeded",
                "livemode": False,
                "created": int(self.now()),
                "_refunded": 0,
            }
            session["status"] = "complete"
            session["payment_status"] = "unpaid" if delayed else "paid"
            session["payment_intent"] = intent_id
            return self.session(session_id)

    def settle(self, session_id: str, *, succeeded: bool = True) -> dict[str, Any]:
        """A delayed payment method finally succeeds or fails."""
        with self._lock:
            session = self.sessions[session_id]
            intent = self.payment_intents[session["payment_intent"]]
            if succeeded:
                session["payment_status"] = "paid"
                intent["status"] = "succeeded"
                intent["amount_received"] = intent["amount"]
            else:
                intent["status"] = "requires_payment_method"
            return self.session(session_id)

    def forget_session(self, session_id: str) -> None:
        """The session is unknown from now on (404), as after a key or account change."""
        with self._lock:
            del self.sessions[session_id]

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """Stripe expires an open session on its own once ``expires_at`` has passed."""
        with self._lock:
            session = self.sessions[session_id]
            if session["status"] == "open":
                session["status"] = "expired"
            return self.session(session_id)

    # -- webhook bodies --------------------------------------------------------------------------

    def event(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        event_id: str | None = None,
        created: int | None = None,
        livemode: bool = False,
    ) -> bytes:
        """A snapshot event body as Stripe POSTs it to a webhook endpoint (``livemode``: made
        with the account's live keys; this fake serves test keys)."""
        body = {
            "id": event_id or f"evt_{self._token()}",
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self.now()) if created is None else created,
            "data": {"object": obj},
            "livemode": livemode,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        with self._lock:
            self.events.append(json.loads(json.dumps(body)))
        return json.dumps(body).encode()

    def session_event(
        self, session_id: str, event_type: str, *, event_id: str | None = None, **overrides: Any
    ) -> bytes:
        """An event carrying the session as it is now, with ``overrides`` applied to it."""
        obj = {**self.session(session_id), **overrides}
        return self.event(event_type, obj, event_id=event_id)

    def refund_event(
        self, refund_id: str, event_type: str = "refund.updated", **overrides: Any
    ) -> bytes:
        with self._lock:
            obj = {**json.loads(json.dumps(self.refunds[refund_id])), **overrides}
        return self.event(event_type, obj)

    @staticmethod
    def sign(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
        """A ``Stripe-Signature`` header for ``payload``, made by the SDK's own helper."""
        return stripe.WebhookSignature.generate_signature_header(
            payload.decode(), secret, timestamp=timestamp
        )

    # -- request handling ------------------------------------------------------------------------

    def _token(self) -> str:
        return f"test_{next(self._ids):04d}{secrets.token_hex(6)}"

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def handle(self, request: RecordedRequest) -> _Answer:
        self._record(request)
        fault = self._take_fault(request.path)
        if fault is not None and fault.kind == "hang":
            self._release.wait(fault.seconds)
        elif fault is not None:
            kind = "rate_limit_error" if fault.status == 429 else "api_error"
            return StripeApiError(
                fault.status, "An unknown error occurred (injected by the fake).", type_=kind
            ).answer
        auth = request.header("Authorization") or ""
        if not auth.startswith("Bearer ") or (
            self.api_key is not None and auth != f"Bearer {self.api_key}"
        ):
            return StripeApiError(401, "Invalid API Key provided.").answer
        with self._lock:  # one request at a time from here: Stripe's per-key serialisation
            return self._idempotent_dispatch(request)

    def _idempotent_dispatch(self, request: RecordedRequest) -> _Answer:
        key = request.idempotency_key if request.method == "POST" else None
        fingerprint = (request.method, request.path, json.dumps(request.form, sort_keys=True))
        if key is not None and key in self._idempotent:
            first, answer = self._idempotent[key]
            if first != fingerprint:
                return StripeApiError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type_="idempotency_error",
                ).answer
            return _Answer(answer.status, answer.body, {"Idempotent-Replayed": "true"})
        try:
            answer = _Answer(200, self._route(request))
            store = True
        except StripeApiError as exc:
            answer, store = exc.answer, exc.store
        if key is not None and store:
            self._idempotent[key] = (fingerprint, answer)
        return answer

    def _route(self, request: RecordedRequest) -> dict[str, Any]:
        method, parts = request.method, request.path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "checkout", "sessions"]:
            return self._create_session(request.form)
        if len(parts) == 4 and parts[:3] == ["v1", "checkout", "sessions"] and method == "GET":
            return self._public(self._existing_session(parts[3]))
        if (
            method == "POST"
            and len(parts) == 5
            and parts[:3] == ["v1", "checkout", "sessions"]
            and parts[4] == "expire"
        ):
            return self._expire(parts[3])
        if method == "POST" and parts == ["v1", "refunds"]:
            return self._create_refund(request.form)
        if method == "GET" and parts == ["v1", "events"]:
            return self._list_events(request.query)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "refunds"]:
            refund = self.refunds.get(parts[2])
            if refund is None:
                raise StripeApiError(
                    404, f"No such refund: '{parts[2]}'", code="resource_missing", param="id"
                )
            return dict(refund)
        raise StripeApiError(404, f"Unrecognized request URL ({method}: {request.path}).")

    # -- events ----------------------------------------------------------------------------------

    def _list_events(self, query: dict[str, Any]) -> dict[str, Any]:
        limit = _integer(query, "limit", required=False)
        limit = 10 if limit is None else limit
        if not 1 <= limit <= 100:
            raise _invalid("limit", "This value must be between 1 and 100.")
        found = sorted(self.events, key=lambda e: (e["created"], e["id"]), reverse=True)
        created = query.get("created")
        bounds = created if isinstance(created, dict) else {}
        if created is not None and not isinstance(created, dict):
            bounds = {"eq": created}
        ops: dict[str, Callable[[int, int], bool]] = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
            "eq": lambda a, b: a == b,
        }
        for op, raw in bounds.items():
            if op not in ops or not str(raw).isdigit():
                raise _invalid(f"created[{op}]", "Invalid integer")
            found = [e for e in found if ops[op](e["created"], int(raw))]
        if query.get("type"):
            found = [e for e in found if e["type"] == query["type"]]
        if query.get("types"):
            found = [e for e in found if e["type"] in query["types"]]
        after = query.get("starting_after")
        if after:
            ids = [e["id"] for e in found]
            if after not in ids:
                raise StripeApiError(
                    404,
                    f"No such event: '{after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            found = found[ids.index(after) + 1 :]
        page = found[:limit]
        return {
            "object": "list",
            "url": "/v1/events",
            "has_more": len(found) > limit,
            "data": json.loads(json.dumps(page)),
        }

    # -- checkout sessions -----------------------------------------------------------------------

    def _create_session(self, form: dict[str, Any]) -> dict[str, Any]:
        mode = form.get("mode")
        if mode is None:
            raise _missing("mode")
        if mode != "payment":
            raise _invalid("mode", f"This fake only supports mode=payment, not {mode!r}.")
        items = form.get("line_items")
        if not isinstance(items, list) or not items:
            raise _missing("line_items")
        total, currency = 0, None
        for index, item in enumerate(items):
            where = f"line_items[{index}]"
            quantity = _integer(item, "quantity")
            price = item.get("price_data")
            if not isinstance(price, dict):
                raise _missing(f"{where}[price_data]")
            unit = _integer(price, "unit_amount")
            if quantity is None or quantity < 1 or unit is None or unit < 0:
                raise _invalid(where, "Quantity must be at least 1 and unit_amount not negative.")
            item_currency = price.get("currency")
            if not isinstance(item_currency, str) or not re.fullmatch(r"[a-z]{3}", item_currency):
                raise _invalid(
                    f"{where}[price_data][currency]", f"Invalid currency: {item_currency}"
                )
            if currency not in (None, item_currency):
                raise _invalid("line_items", "All line items must use the same currency.")
            name = (price.get("product_data") or {}).get("name")
            if not name:
                raise _missing(f"{where}[price_data][product_data][name]")
            total += quantity * unit
            currency = item_currency
        if not form.get("success_url"):
            raise _missing("success_url")
        now = int(self.now())
        expires_at = _integer(form, "expires_at", required=False)
        if expires_at is None:
            expires_at = now + MAX_EXPIRY
        elif expires_at < now + MIN_EXPIRY:
            raise _invalid(
                "expires_at",
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
                "creation.",
            )
        elif expires_at > now + MAX_EXPIRY:
            raise _invalid(
                "expires_at",
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session "
                "creation.",
            )
        email = form.get("customer_email")
        if email is not None and "@" not in email:
            raise _invalid("customer_email", f"Invalid email address: {email}")
        metadata = form.get("metadata") or {}
        intent_data = form.get("payment_intent_data") or {}
        for meta in (metadata, intent_data.get("metadata") or {}):
            if not isinstance(meta, dict) or any(
                len(k) > 40 or not isinstance(v, str) or len(v) > 500 for k, v in meta.items()
            ):
                raise _invalid("metadata", "Metadata keys are at most 40 characters, values 500.")
        session_id = f"cs_{self._token()}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "created": now,
            "currency": currency,
            "customer": None,
            "customer_email": email,
            "expires_at": expires_at,
            "livemode": False,
            "metadata": dict(metadata),
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form.get("success_url"),
            "ui_mode": "hosted_page",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        self._session_extras[session_id] = {
            "line_items": items,
            "payment_intent_metadata": dict(intent_data.get("metadata") or {}),
        }
        return self._public(session)

    def _existing_session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            raise StripeApiError(
                404,
                f"No such checkout.session: '{session_id}'",
                code="resource_missing",
                param="session",
            )
        return session

    def _expire(self, session_id: str) -> dict[str, Any]:
        session = self._existing_session(session_id)
        if session["status"] != "open":
            raise StripeApiError(
                400,
                'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
                f'Session has a status of "{session["status"]}".',
                store=True,
            )
        session["status"] = "expired"
        session["url"] = None
        return self._public(session)

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(obj))  # type: ignore[no-any-return]

    # -- refunds ---------------------------------------------------------------------------------

    def _create_refund(self, form: dict[str, Any]) -> dict[str, Any]:
        intent_id = form.get("payment_intent")
        if intent_id is None:
            raise StripeApiError(
                400,
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                code="parameter_missing",
            )
        intent = self.payment_intents.get(intent_id)
        if intent is None:
            raise StripeApiError(
                400,
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="payment_intent",
            )
        reason = form.get("reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise _invalid("reason", f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}")
        amount = _integer(form, "amount", required=False)
        if amount is not None and amount < 1:
            raise _invalid("amount", "Refund amount must be at least 1.")
        if intent["status"] != "succeeded":
            raise StripeApiError(
                400,
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                code="charge_not_refundable",
                store=True,
            )
        left = intent["amount_received"] - intent["_refunded"]
        if left <= 0:
            raise StripeApiError(
                400,
                f"Charge {intent['latest_charge']} has already been refunded.",
                code="charge_already_refunded",
                store=True,
            )
        amount = left if amount is None else amount
        if amount > left:
            raise StripeApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                code="amount_too_large",
                param="amount",
                store=True,
            )
        intent["_refunded"] += amount
        refund_id = f"re_{self._token()}"
        refund = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": intent["latest_charge"],
            "created": int(self.now()),
            "currency": intent["currency"],
            "metadata": dict(form.get("metadata") or {}),
            "payment_intent": intent_id,
            "reason": reason,
            "status": self.refund_status,
        }
        self.refunds[refund_id] = refund
        return dict(refund)

    def refund_in_dashboard(self, payment_intent_id: str, amount: int) -> bytes:
        """Someone refunds ``amount`` from the Stripe dashboard (not through our API calls);
        returns the charge.refunded event Stripe sends: the charge with ``amount_refunded``
        counting every refund on it so far, ``refunded`` true only once all is given back."""
        with self._lock:
            intent = self.payment_intents[payment_intent_id]
            left = intent["amount_received"] - intent["_refunded"]
            if not 0 < amount <= left:
                raise ValueError(f"cannot refund {amount} of {left} left")
            intent["_refunded"] += amount
            refund_id = f"re_{self._token()}"
            self.refunds[refund_id] = {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "charge": intent["latest_charge"],
                "created": int(self.now()),
                "currency": intent["currency"],
                "metadata": {},
                "payment_intent": payment_intent_id,
                "reason": None,
                "status": "succeeded",
            }
            charge = {
                "id": intent["latest_charge"],
                "object": "charge",
                "amount": intent["amount"],
                "amount_captured": intent["amount_received"],
                "amount_refunded": intent["_refunded"],
                "currency": intent["currency"],
                "payment_intent": payment_intent_id,
                "refunded": intent["_refunded"] >= intent["amount_received"],
                "status": "succeeded",
                "livemode": False,
            }
        return self.event("charge.refunded", charge)

    def refunded(self, payment_intent_id: str) -> int:
        """How much of the payment has been refunded so far, in minor units."""
        with self._lock:
            return int(self.payment_intents[payment_intent_id]["_refunded"])


def _ignore_disconnects(default: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """A client that timed out closed its socket: not worth a traceback on stderr."""

    def handle_error(request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        default(request, client_address)

    return handle_error


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, closed after the answer, so no idle keep-alive
    # sockets outlive a test (filterwarnings=error turns a leaked socket into a failure).
    protocol_version = "HTTP/1.0"
    timeout = 10  # seconds a connection may sit silent before the handler gives up

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake keeps its own record of requests."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fake: FakeStripe = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        url = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=unquote(url.path),
            query=decode_form(url.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            form=decode_form(body) if body else {},
            body=body,
        )
        answer = fake.handle(request)
        data = json.dumps(answer.body).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(8)}")
            self.send_header("Stripe-Version", API_VERSION)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (ConnectionError, TimeoutError):
            pass  # the client gave up (a timeout test); Stripe would not notice either
