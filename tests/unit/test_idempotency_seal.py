"""The Idempotency-Key seal: authenticated encryption; tampered or foreign seals are refused."""

from __future__ import annotations

import base64

import attrs
import pytest

from entrypoints.web.idempotency import seal, unseal

from .http_support import Web

SECRET = "a-secret-key-for-the-seal-tests"
LABEL = "key-1:fingerprint-1"
TOKEN = "mt_0123456789abcdefghijklmnopqrstuv"


def _flip(sealed: str, index: int) -> str:
    data = bytearray(base64.urlsafe_b64decode(sealed))
    data[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(data)).decode()


def test_a_seal_opens_with_the_same_secret_and_label() -> None:
    assert unseal(SECRET, LABEL, seal(SECRET, LABEL, TOKEN)) == TOKEN


def test_two_seals_of_one_value_differ() -> None:
    assert seal(SECRET, LABEL, TOKEN) != seal(SECRET, LABEL, TOKEN)


@pytest.mark.parametrize("index", [0, 11, 12, 20, -1])
def test_a_changed_byte_anywhere_is_refused(index: int) -> None:
    sealed = seal(SECRET, LABEL, TOKEN)
    with pytest.raises(ValueError, match="changed"):
        unseal(SECRET, LABEL, _flip(sealed, index))


def test_another_secret_key_is_refused() -> None:
    with pytest.raises(ValueError, match="changed"):
        unseal("another-secret-key", LABEL, seal(SECRET, LABEL, TOKEN))


def test_a_seal_moved_to_another_key_or_request_is_refused() -> None:
    with pytest.raises(ValueError, match="changed"):
        unseal(SECRET, "key-2:fingerprint-1", seal(SECRET, LABEL, TOKEN))


@pytest.mark.parametrize("sealed", ["", "not base64!", "c2hvcnQ="])
def test_what_is_not_a_seal_is_refused(sealed: str) -> None:
    with pytest.raises(ValueError, match="sealed"):
        unseal(SECRET, LABEL, sealed)


def test_a_tampered_record_replays_without_a_manage_token() -> None:
    web = Web()
    first = web.book(headers={"Idempotency-Key": "tamper-1"}).get_json()
    record = web.store.idempotency["tamper-1"]
    assert record.sealed_secret is not None
    web.store.idempotency["tamper-1"] = attrs.evolve(
        record, sealed_secret=_flip(record.sealed_secret, -3)
    )
    replay = web.book(headers={"Idempotency-Key": "tamper-1"})
    assert replay.status_code == 201
    assert replay.get_json()["booking"] == first["booking"]
    assert replay.get_json()["manage_token"] is None
