"""POST /api/webhooks/calcom: a practitioner's cancellation in Cal.com cancels and refunds ours."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from adapters.memory import (
    FakeCalendarGateway,
    FakePaymentGateway,
    FixedClock,
    InMemoryStore,
    RecordingNotifier,
)
from booking_core.jobs import Job, JobContext, JobStatus, run_due_jobs
from booking_core.model import Booking, BookingStatus, Client, Money, Payment, RefundStatus
from entrypoints.bootstrap import bootstrap
from entrypoints.dev.sample_data import seed
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

SECRET = "calcom-webhook-secret"
NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)


def _cancelled(uid: str) -> dict[str, object]:
    return {
        "triggerEvent": "BOOKING_CANCELLED",
        "createdAt": "2030-01-07T09:00:00.000Z",
        "payload": {"uid": uid, "status": "CANCELLED", "cancellationReason": "ill"},
    }


def _post(client: FlaskClient, body: dict[str, object], secret: str = SECRET) -> int:
    raw = json.dumps(body).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    response = client.post(
        "/api/webhooks/calcom",
        data=raw,
        headers={"X-Cal-Signature-256": signature, "Content-Type": "application/json"},
    )
    return response.status_code


@pytest.fixture
def world() -> tuple[InMemoryStore, FlaskClient, int]:
    store = InMemoryStore()
    deps = bootstrap(
        Settings(env="test", calcom_webhook_secret=SECRET),
        uow_factory=store.unit_of_work,
        clock=FixedClock(NOW),
        payments=FakePaymentGateway(),
        calendar=FakeCalendarGateway(),
        notifier=RecordingNotifier(),
    )
    seed(deps.uow())
    uow = store.unit_of_work()
    with uow:
        booking = uow.bookings.add(
            Booking(
                practitioner_id=2,
                service_id=3,
                client=Client(name="Ada", email="ada@example.com"),
                start=NOW + timedelta(hours=5),  # inside the 24 h window: still a full refund
                end=NOW + timedelta(hours=6),
                price=Money(8000, "usd"),
                status=BookingStatus.CONFIRMED,
                payment_intent_id="pi_1",
                calendar_uid="cal-uid-1",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        # A confirmed booking's payment is in the ledger, as the payment event put it there.
        uow.ledger.capture(
            Payment(payment_intent_id="pi_1", booking_id=booking.id or 0, captured=booking.price),
            NOW,
        )
        uow.commit()
    return store, create_app(deps).test_client(), booking.id or 0


def _booking(store: InMemoryStore, booking_id: int) -> Booking:
    uow = store.unit_of_work()
    with uow:
        found = uow.bookings.get(booking_id)
    assert found is not None
    return found


def test_cancellation_in_calcom_cancels_and_refunds_in_full(
    world: tuple[InMemoryStore, FlaskClient, int],
) -> None:
    store, client, booking_id = world
    assert _post(client, _cancelled("cal-uid-1")) == 200
    booking = _booking(store, booking_id)
    assert booking.status is BookingStatus.CANCELLED
    assert booking.refund is not None
    assert booking.refund.amount == Money(8000, "usd")
    assert booking.refund.status is RefundStatus.PENDING
    uow = store.unit_of_work()
    with uow:
        kinds = sorted(j.kind for j in uow.outbox.list(JobStatus.PENDING))
    assert kinds == ["email", "email", "payment.refund"]  # the client and the practitioner


def test_redelivery_changes_nothing(world: tuple[InMemoryStore, FlaskClient, int]) -> None:
    store, client, booking_id = world
    assert _post(client, _cancelled("cal-uid-1")) == 200
    version = _booking(store, booking_id).version
    assert _post(client, _cancelled("cal-uid-1")) == 200
    assert _booking(store, booking_id).version == version


def test_bad_signature_is_400_and_changes_nothing(
    world: tuple[InMemoryStore, FlaskClient, int],
) -> None:
    store, client, booking_id = world
    assert _post(client, _cancelled("cal-uid-1"), secret="wrong") == 400
    assert _booking(store, booking_id).status is BookingStatus.CONFIRMED


def test_other_triggers_and_unknown_uids_are_ignored(
    world: tuple[InMemoryStore, FlaskClient, int],
) -> None:
    store, client, booking_id = world
    assert _post(client, {**_cancelled("cal-uid-1"), "triggerEvent": "BOOKING_CREATED"}) == 200
    assert _post(client, _cancelled("someone-elses-uid")) == 200
    assert _booking(store, booking_id).status is BookingStatus.CONFIRMED


def _rescheduled(old_uid: str, new_uid: str, start: datetime) -> dict[str, object]:
    """BOOKING_RESCHEDULED as Cal.com sends it: the new uid, the old one in rescheduleUid."""
    return {
        "triggerEvent": "BOOKING_RESCHEDULED",
        "createdAt": "2030-01-07T09:30:00.000Z",
        "payload": {
            "uid": new_uid,
            "bookingId": 201,
            "rescheduleId": 200,
            "rescheduleUid": old_uid,
            "rescheduleStartTime": "2030-01-07T13:00:00Z",
            "rescheduleEndTime": "2030-01-07T14:00:00Z",
            "startTime": start.isoformat().replace("+00:00", "Z"),
            "endTime": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "status": "ACCEPTED",
            "metadata": {"booking_id": "1"},
        },
    }


def _jobs(store: InMemoryStore, status: JobStatus = JobStatus.PENDING) -> list[Job]:
    uow = store.unit_of_work()
    with uow:
        return uow.outbox.list(status)


def _run_jobs(client: FlaskClient) -> dict[str, int]:
    d = client.application.extensions["booking"]
    ctx = JobContext(
        uow=d.uow(),
        payments=d.payments,
        calendar=d.calendar,
        notifier=d.notifier,
        clock=d.clock,
        rules=d.rules,
    )
    return run_due_jobs(ctx, limit=50)


def test_a_move_in_calcom_moves_ours_and_tells_both_sides(
    world: tuple[InMemoryStore, FlaskClient, int],
) -> None:
    store, client, booking_id = world
    before = _booking(store, booking_id)
    new_start = datetime(2030, 1, 9, 15, 0, tzinfo=UTC)
    assert _post(client, _rescheduled("cal-uid-1", "cal-uid-2", new_start)) == 200
    moved = _booking(store, booking_id)
    assert (moved.start, moved.end) == (new_start, new_start + (before.end - before.start))
    assert moved.calendar_uid == "cal-uid-2"
    assert moved.sequence == before.sequence + 1
    jobs = _jobs(store)
    mails = sorted((j.payload["template"], j.payload["to"]) for j in jobs if j.kind == "email")
    assert mails == [
        ("reminder", "client"),
        ("reminder", "practitioner"),
        ("rescheduled", "client"),
        ("rescheduled", "practitioner"),
    ]
    assert not [j for j in jobs if j.kind.startswith("calendar.")]  # Cal.com moved already
    # Redelivered: nothing changes.
    assert _post(client, _rescheduled("cal-uid-1", "cal-uid-2", new_start)) == 200
    assert _booking(store, booking_id).version == moved.version


def test_our_own_move_echoed_back_only_records_the_uid(
    world: tuple[InMemoryStore, FlaskClient, int],
) -> None:
    store, client, booking_id = world
    before = _booking(store, booking_id)
    assert _post(client, _rescheduled("cal-uid-1", "cal-uid-9", before.start)) == 200
    after = _booking(store, booking_id)
    assert (after.start, after.sequence, after.calendar_uid) == (
        before.start,
        before.sequence,
        "cal-uid-9",
    )
    assert not [j for j in _jobs(store) if j.kind == "email"]


def test_a_move_to_a_time_taken_here_is_parked_for_an_admin(
    world: tuple[InMemoryStore, FlaskClient, int],
) -> None:
    store, client, booking_id = world
    taken = datetime(2030, 1, 9, 15, 0, tzinfo=UTC)
    uow = store.unit_of_work()
    with uow:
        uow.bookings.add(
            Booking(
                practitioner_id=2,
                service_id=3,
                client=Client(name="Bob", email="bob@example.com"),
                start=taken,
                end=taken + timedelta(hours=1),
                price=Money(8000, "usd"),
                status=BookingStatus.CONFIRMED,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        uow.commit()
    before = _booking(store, booking_id)
    assert _post(client, _rescheduled("cal-uid-1", "cal-uid-2", taken)) == 200
    after = _booking(store, booking_id)
    assert (after.start, after.calendar_uid, after.version) == (
        before.start,
        "cal-uid-1",
        before.version,
    )
    assert _run_jobs(client)["parked"] == 1
    [parked] = _jobs(store, JobStatus.PARKED)
    assert parked.kind == "calendar.moved"
    assert "moved in Cal.com to 2030-01-09T15:00:00+00:00" in parked.last_error
    assert "an admin must move or cancel one of the bookings" in parked.last_error
    # Redelivered: still one parked job, nothing moved.
    assert _post(client, _rescheduled("cal-uid-1", "cal-uid-2", taken)) == 200
    assert len(_jobs(store, JobStatus.PARKED)) == 1
    assert _booking(store, booking_id).start == before.start
