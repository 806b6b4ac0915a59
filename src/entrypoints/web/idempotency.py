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

from booking_core.errors import BadRequest, DuplicateRequest, RequestInProgress
from booking_core.ports import IdempotencyRecord
from entrypoints.bootstrap import Deps
from entrypoints.web.limits import mark_replayed

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
    run: Callable[[], tuple[dict[str, Any], str]],
    *,
    deps: Deps,
) -> dict[str, Any]:
    """Run ``run`` once per key; a retry with the same body returns the stored answer.

    ``run`` returns the response body and the one-time secret (manage token) to add to it.
    Raises DuplicateRequest (same key, other body) and RequestInProgress (first one still
    running). A failed first request releases the key so the client may retry it.
    """
    key = _check_key(key)
    print_ = fingerprint(body)
    secret = str(current_app.config["SECRET_KEY"])
    label = f"{key}:{print_}"
    uow = deps.uow()
    with uow:
        existing = uow.idempotency.reserve(
            IdempotencyRecord(key=key, fingerprint=print_, created_at=deps.clock.now())
        )
        uow.commit()
    if existing is not None:
        if existing.fingerprint != print_:
            raise DuplicateRequest("this Idempotency-Key was used for a different request")
        if existing.status_code is None or existing.response is None:
            raise RequestInProgress("the first request with this key is still running")
        answer = dict(existing.response)
        mark_replayed()  # a replay creates no hold: the per-email limit does not count it
        if existing.sealed_secret:
            try:
                answer["manage_token"] = unseal(secret, label, existing.sealed_secret)
            except (ValueError, UnicodeDecodeError):
                answer["manage_token"] = None  # sealed under another SECRET_KEY
        return answer
    try:
        answer, token = run()
    except BaseException:
        with uow:
            uow.idempotency.release(key)
            uow.commit()
        raise
    with uow:
        uow.idempotency.complete(key, 201, answer, seal(secret, label, token))
        uow.commit()
    return {**answer, "manage_token": token}
