"""HTTP: Idempotency-Key on POST /api/bookings, and the booking rate limits."""

from __future__ import annotations

import json
from datetime import timedelta

import flask
import pytest

from booking_core import usecases as uc
from booking_core.model import BookingStatus
from booking_core.ports import IdempotencyRecord
from entrypoints.web.idempotency import fingerprint

from .http_support import NOW, SLOT, SLOT_2, SLOT_3, Web, assert_problem, booking_body


@pytest.fixture
def web() -> Web:
    return Web()


def _key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


# -- Idempotency-Key ------------------------------------------------------------------------------


def test_same_key_and_body_returns_the_first_answer_and_books_once(web: Web) -> None:
    first = web.book(headers=_key("retry-1"))
    second = web.book(headers=_key("retry-1"))
    assert first.status_code == second.status_code == 201
    assert second.get_json() == first.get_json()
    assert second.get_json()["manage_token"] == first.get_json()["manage_token"]
    assert second.headers["Location"] == first.headers["Location"]
    assert len(web.bookings()) == 1
    assert len(web.payments.sessions) == 1


def test_the_replayed_manage_token_still_works(web: Web) -> None:
    web.book(headers=_key("retry-2"))
    replay = web.book(headers=_key("retry-2")).get_json()
    response = web.client.get(
        f"/api/bookings/{replay['booking']['id']}",
        headers={"Authorization": f"Bearer {replay['manage_token']}"},
    )
    assert response.status_code == 200


def test_the_stored_answer_does_not_hold_the_manage_token_in_clear(web: Web) -> None:
    token = web.book(headers=_key("retry-3")).get_json()["manage_token"]
    record = web.store.idempotency["retry-3"]
    assert record.status_code == 201
    assert token not in json.dumps(record.response)
    assert record.sealed_secret
    assert token not in record.sealed_secret


def test_same_key_with_another_body_is_422_and_books_nothing_more(web: Web) -> None:
    web.book(headers=_key("retry-4"))
    before = web.snapshot()
    response = web.book(booking_body(start=SLOT_2), headers=_key("retry-4"))
    assert_problem(response, 422, "idempotency_key_reused")
    assert web.snapshot() == before


def test_key_order_in_the_body_does_not_matter(web: Web) -> None:
    body = booking_body()
    first = web.post_raw(json.dumps(body), headers=_key("retry-5"))
    reordered = json.dumps(dict(reversed(list(body.items()))))
    second = web.post_raw(reordered, headers=_key("retry-5"))
    assert second.status_code == 201
    assert second.get_json() == first.get_json()


def test_another_key_is_another_request(web: Web) -> None:
    web.book(headers=_key("a-key"))
    assert_problem(web.book(headers=_key("b-key")), 409, "slot_unavailable")
    assert web.book(booking_body(start=SLOT_2), headers=_key("c-key")).status_code == 201
    assert len(web.bookings()) == 2


def test_a_failed_first_request_releases_the_key(web: Web) -> None:
    web.payments.fail_next()
    assert_problem(web.book(headers=_key("retry-6")), 503, "payment_unavailable")
    assert "retry-6" not in web.store.idempotency
    retry = web.book(headers=_key("retry-6"))
    assert retry.status_code == 201
    assert retry.get_json()["booking"]["start"] == SLOT
    assert web.book(headers=_key("retry-6")).get_json() == retry.get_json()


def test_a_refused_first_request_releases_the_key(web: Web) -> None:
    web.booked()  # someone else holds SLOT
    assert_problem(web.book(headers=_key("retry-7")), 409, "slot_unavailable")
    assert "retry-7" not in web.store.idempotency


def test_a_request_still_in_progress_is_409(web: Web) -> None:
    body = booking_body()
    web.store.idempotency["busy"] = IdempotencyRecord(
        key="busy", fingerprint=fingerprint(body), created_at=NOW
    )
    assert_problem(web.book(body, headers=_key("busy")), 409, "request_in_progress")
    assert web.bookings() == []


@pytest.mark.parametrize(
    "key",
    ["k" * 256, "clé", "ключ".encode().decode("latin-1"), "tab\there", "del\x7f", " ", ""],
)
def test_an_invalid_key_is_400_and_writes_nothing(web: Web, key: str) -> None:
    before = web.snapshot()
    assert_problem(web.book(headers=_key(key)), 400, "bad_request")
    assert web.snapshot() == before


def test_a_key_of_255_characters_is_fine(web: Web) -> None:
    assert web.book(headers=_key("k" * 255)).status_code == 201


# -- rate limits ---------------------------------------------------------------------------------


def test_per_ip_limit_answers_429_with_retry_after() -> None:
    web = Web(settings={"ratelimit_bookings_per_ip": "2 per minute"})
    assert web.book(start=SLOT).status_code == 201
    assert web.book(start=SLOT_2).status_code == 201
    response = web.book(start=SLOT_3)
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    assert len(web.bookings()) == 2
    # Reads are not limited, and another address still may book.
    assert web.client.get("/api/practitioners").status_code == 200
    other = web.client.post(
        "/api/bookings",
        json=booking_body(start=SLOT_3),
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert other.status_code == 201


def test_per_ip_limit_counts_refused_requests_too() -> None:
    web = Web(settings={"ratelimit_bookings_per_ip": "2 per minute"})
    assert web.book(start="nope").status_code == 422
    assert web.post_raw(b"{").status_code == 400
    assert_problem(web.book(), 429, "rate_limited")


def test_per_email_limit_answers_429_with_retry_after() -> None:
    web = Web(settings={"ratelimit_bookings_per_email": "2 per hour"})
    client = {"name": "Ada", "email": "ada@example.com"}
    assert web.book(start=SLOT, client=client).status_code == 201
    assert web.book(start=SLOT_2, client=client).status_code == 201
    shouting = {"name": "Ada", "email": "  ADA@Example.com "}
    response = web.book(start=SLOT_3, client=shouting)
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    assert (
        web.book(start=SLOT_3, client={"name": "Bob", "email": "bob@example.com"}).status_code
        == 201
    )


def test_per_email_limit_survives_bodies_that_are_not_json() -> None:
    web = Web(settings={"ratelimit_bookings_per_email": "5 per hour"})
    assert_problem(web.post_raw(b"[" * 5000 + b"]" * 5000), 400)
    assert_problem(web.post_raw(b"\xff"), 400)
    assert_problem(web.post_raw("x=1", "application/x-www-form-urlencoded"), 415)


def test_zero_turns_the_limits_off(web: Web) -> None:
    for _ in range(6):
        assert web.book(start="nope").status_code == 422
    assert "booking_limiter" not in web.app.extensions


def test_with_the_booking_limits_off_booking_requests_skip_the_limiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The link-recovery limit keeps a limiter; a booking request, which no limit wraps, then
    leaves it alone (its hooks once ran for every booking request all the same)."""
    import flask_limiter

    web = Web(
        settings={
            "ratelimit_bookings_per_ip": "0",
            "ratelimit_bookings_per_email": "0",
            "ratelimit_recover_per_ip": "3 per hour",
        }
    )
    assert "booking_limiter" in web.app.extensions
    used: list[str] = []
    context = flask_limiter.Limiter.context

    def counted(limiter: flask_limiter.Limiter) -> object:
        used.append(flask.request.endpoint or "")
        return context.fget(limiter)  # type: ignore[attr-defined]

    monkeypatch.setattr(flask_limiter.Limiter, "context", property(counted))
    assert web.book(start=SLOT).status_code == 201
    assert used == []
    recover = web.client.post("/api/bookings/recover", json={"email": "ada@example.com"})
    assert recover.status_code == 202
    assert "api.recover_links" in used


def test_one_limit_on_and_the_other_off() -> None:
    web = Web(
        settings={"ratelimit_bookings_per_ip": "0", "ratelimit_bookings_per_email": "1 per hour"}
    )
    assert web.book(start=SLOT).status_code == 201
    assert_problem(web.book(start=SLOT_2), 429, "rate_limited")
    other = {"name": "Bob", "email": "bob@example.com"}
    assert web.book(start=SLOT_2, client=other).status_code == 201  # no per-IP limit
    assert_problem(web.book(start=SLOT_3, client=other), 429, "rate_limited")


# -- keys that cannot stick (issue 10, reproduction 3) -------------------------------------------


class _Died(BaseException):
    """The process dies here (the test stands in for SIGKILL: nothing after it runs)."""


def _die_after_the_hold(web: Web, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that held the slot under ``key`` and died before its checkout was stored."""

    def create_checkout(request: object) -> object:
        raise _Died

    with monkeypatch.context() as patch:
        patch.setattr(web.payments, "create_checkout", create_checkout)
        # A dead process cleans nothing up.
        patch.setattr(uc, "release_idempotency_key", lambda key, uow: None)
        with pytest.raises(_Died):
            web.book(booking_body(), headers=_key(key))


def test_a_key_whose_request_died_is_free_again_after_a_short_lease(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    _die_after_the_hold(web, "died-1", monkeypatch)
    (orphan,) = web.bookings()
    assert (orphan.status, orphan.checkout_session_id) == (BookingStatus.PENDING, None)
    early = web.book(headers=_key("died-1"))
    assert_problem(early, 409, "request_in_progress")  # it may still be running
    web.clock.advance(timedelta(seconds=31))
    retry = web.book(headers=_key("died-1"))
    assert retry.status_code == 201, retry.get_data(as_text=True)
    assert retry.get_json()["booking"]["start"] == SLOT  # the dead request's hold was released
    assert web.stored(orphan.id or 0).status is BookingStatus.EXPIRED
    assert web.book(headers=_key("died-1")).get_json() == retry.get_json()


def test_the_answer_is_stored_with_the_checkout(web: Web) -> None:
    answer = web.book(headers=_key("stored-1")).get_json()
    record = web.store.idempotency["stored-1"]
    (booking,) = web.bookings()
    assert record.status_code == 201
    assert record.booking_id == booking.id
    assert record.response is not None
    assert record.response["checkout_url"] == answer["checkout_url"]
    assert booking.checkout_session_id is not None
