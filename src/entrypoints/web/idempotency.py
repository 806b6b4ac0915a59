"""Idempotency-Key for POST /api/bookings: a retried request gets the first answer back.

The first answer is stored without its manage token in clear: the token is sealed with AES-GCM
under a key derived from SECRET_KEY (HKDF-SHA256), the Idempotency-Key and the request's
fingerprint bound as associated data, so a copy of the database alone does not reveal it and a
changed or transplanted record is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from booking_core import usecases as uc
from booking_core.errors import BadRequest, DuplicateRequest, RequestInProgress
from booking_core.ports import IdempotencyRecord
from entrypoints.bootstrap import Deps
from entrypoints.web.limits import mark_replayed

MAX_KEY_LENGTH = 255
# Printable ASCII, no space at either end (the OpenAPI document states the same pattern).
KEY_PATTERN = "^[!-~]([ -~]{0,253}[!-~])?$"
_KEY = re.compile(KEY_PATTERN)


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


_SEAL_INFO = b"booking idempotency seal v1"
_NONCE_BYTES = 12


def _seal_key(secret: str) -> bytes:
    """A 256-bit AES key for the seal, derived from SECRET_KEY (never the key itself)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(
        secret.encode()
    )


def seal(secret: str, label: str, value: str) -> str:
    """Encrypt and authenticate ``value`` with AES-GCM; ``label`` is bound as associated data.

    The result is ``base64url(nonce || ciphertext || tag)`` with a fresh random nonce.
    """
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_seal_key(secret)).encrypt(nonce, value.encode(), label.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(secret: str, label: str, sealed: str) -> str:
    """The value ``seal`` sealed under the same secret and label.

    Raises ValueError when the record was changed, was sealed under another SECRET_KEY or for
    another key or request (the label), or is not a seal at all.
    """
    try:
        data = base64.urlsafe_b64decode(sealed.encode())
    except ValueError as exc:
        raise ValueError("not a sealed value") from exc
    if len(data) <= _NONCE_BYTES:
        raise ValueError("not a sealed value")
    try:
        clear = AESGCM(_seal_key(secret)).decrypt(
            data[:_NONCE_BYTES], data[_NONCE_BYTES:], label.encode()
        )
    except InvalidTag as exc:
        raise ValueError("the sealed value was changed or sealed under another key") from exc
    return clear.decode()


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, "
            "without spaces at either end"
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
    mark_replayed()  # a replay creates no hold: the per-email limit does not count it
    if outcome.sealed_secret:
        try:
            answer["manage_token"] = unseal(secret, label, outcome.sealed_secret)
        except (ValueError, UnicodeDecodeError):
            answer["manage_token"] = None  # sealed under another SECRET_KEY
    return answer
