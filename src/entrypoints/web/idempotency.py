"""Idempotency-Key for POST /api/bookings: a retried request gets the first answer back.

The first answer is stored without its manage token in clear: the token is sealed with a
keystream derived from SECRET_KEY, the key and the request's fingerprint (HMAC-SHA256 in counter
mode), so a copy of the database alone does not reveal it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from flask import current_app

from booking_core import usecases as uc
from booking_core.errors import BadRequest, DuplicateRequest, RequestInProgress
from booking_core.ports import IdempotencyRecord
from entrypoints.bootstrap import Deps

MAX_KEY_LENGTH = 255


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _keystream(secret: bytes, label: str, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hmac.new(secret, f"{label}:{counter}".encode(), hashlib.sha256).digest()
        counter += 1
    return out[:length]


def seal(secret: str, label: str, value: str) -> str:
    data = value.encode()
    stream = _keystream(secret.encode(), label, len(data))
    sealed = bytes(a ^ b for a, b in zip(data, stream, strict=True))
    return base64.urlsafe_b64encode(sealed).decode()


def unseal(secret: str, label: str, sealed: str) -> str:
    data = base64.urlsafe_b64decode(sealed.encode())
    stream = _keystream(secret.encode(), label, len(data))
    return bytes(a ^ b for a, b in zip(data, stream, strict=True)).decode()


def _check_key(key: str) -> str:
    key = key.strip()
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


def run_once(
    key: str,
    body: dict[str, Any],
    book: Callable[[uc.IdempotencyClaim], uc.BookingRequested | IdempotencyRecord],
    respond: Callable[[uc.BookingRequested], dict[str, Any]],
    *,
    deps: Deps,
) -> dict[str, Any]:
    """Book once per key; a retry with the same body returns the stored answer.

    ``book(claim)`` runs the booking under the key (uc.request_booking_once: the key is claimed
    in its first transaction and the answer, made by ``respond`` and sealed here, is stored with
    the checkout). The key is held for a short lease: a retry after the first request died
    starts again, on a free slot. Raises DuplicateRequest (same key, other body) and
    RequestInProgress (first one still running). A failed first request releases the key so the
    client may retry it.
    """
    key = _check_key(key)
    print_ = fingerprint(body)
    secret = str(current_app.config["SECRET_KEY"])
    label = f"{key}:{print_}"

    def stored(result: uc.BookingRequested) -> tuple[dict[str, Any], str | None]:
        return respond(result), seal(secret, label, result.manage_token)

    try:
        outcome = book(uc.IdempotencyClaim(key=key, answer=stored, fingerprint=print_))
    except (DuplicateRequest, RequestInProgress):
        raise  # the key is someone else's: leave it
    except BaseException:
        uc.release_idempotency_key(key, uow=deps.uow())
        raise
    if isinstance(outcome, uc.BookingRequested):
        return {**respond(outcome), "manage_token": outcome.manage_token}
    answer = dict(outcome.response or {})
    if outcome.sealed_secret:
        try:
            answer["manage_token"] = unseal(secret, label, outcome.sealed_secret)
        except (ValueError, UnicodeDecodeError):
            answer["manage_token"] = None  # sealed under another SECRET_KEY
    return answer
