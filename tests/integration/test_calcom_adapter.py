"""The Cal.com v2 adapter against a local fake Cal.com over real HTTP, with the booking core.

Covers the practitioner mapping, the exact requests, parsing, the fallback to the schedule, the
retry, breaker and cache rules, the Redis cache shared by two processes' gateways, and the
calendar sync jobs. Timing checks print their figures (run with -s to see them).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from adapters.calcom import BreakerState, CalComCalendarGateway, CalcomClient
from adapters.memory import sign_fake_event
from adapters.slot_cache import InMemorySlotCache, PostgresSlotCache, RedisSlotCache
from booking_core.errors import CalendarSlotTaken, CalendarUnavailable
from booking_core.jobs import JobStatus, run_due_jobs
from booking_core.model import BookingStatus, CalendarLink, Client, Interval, Money, Service
from booking_core.ports import CalendarBookingRequest
from booking_core.usecases import (
    AvailabilityQuery,
    CancelBooking,
    RescheduleBooking,
    cancel_booking,
    get_availability,
    handle_payment_event,
    request_booking,
    reschedule_booking,
)

try:
    from calcom_fixtures import (
        CALCOM_STARTS,
        EVENT_TYPE_ID,
        TUESDAY,
        ManualClock,
        RecordingSleep,
        World,
        closed_port_url,
        fake_calcom,
        make_gateway,
        redis_cache_factory,
        redis_url,
    )
    from fake_calcom import FakeCalcom
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration.calcom_fixtures import (
        CALCOM_STARTS,
        EVENT_TYPE_ID,
        TUESDAY,
        ManualClock,
        RecordingSleep,
        World,
        closed_port_url,
        fake_calcom,
        make_gateway,
        redis_cache_factory,
        redis_url,
    )
    from tests.integration.fake_calcom import FakeCalcom

__all__ = ["closed_port_url", "fake_calcom", "redis_cache_factory", "redis_url"]  # fixtures

LINK = CalendarLink(str(EVENT_TYPE_ID))
# Working hours 09:00-17:00 Berlin (UTC+1) on Tuesday 2030-01-08: starts 08:00..15:00 UTC.
SCHEDULE_STARTS = [datetime(2030, 1, 8, h, 0, tzinfo=UTC) for h in range(8, 16)]
WINDOW = Interval(datetime(2030, 1, 7, 23, tzinfo=UTC), datetime(2030, 1, 8, 23, tzinfo=UTC))
SERVICE = Service(id=1, name="Session", duration_minutes=60, price=Money(8000, "eur"))


def availability(world: World):  # type: ignore[no-untyped-def]
    return get_availability(
        AvailabilityQuery(world.practitioner_id, world.service_id, TUESDAY, TUESDAY),
        uow=world.uow(),
        calendar=world.calendar,
        clock=world.clock,
        rules=world.rules,
    )


def starts(slots: list[Interval]) -> list[datetime]:
    return [s.start for s in slots]


def slot_requests(fake: FakeCalcom) -> int:
    return len(fake.requests_to("/v2/slots"))


# -- mapping -------------------------------------------------------------------------------------


def test_env_link_maps_the_practitioner_when_none_is_stored(fake_calcom: FakeCalcom) -> None:
    env_link = CalendarLink("1001", user="42", username="dr-ada")
    world = World(make_gateway(fake_calcom), stored_link=False)
    gateway = make_gateway(fake_calcom, links={world.practitioner_id: env_link})
    assert gateway.link_for(world.practitioner) == env_link


def test_stored_link_wins_over_env(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom), stored_link=True)
    gateway = make_gateway(fake_calcom, links={world.practitioner_id: CalendarLink("9999")})
    assert gateway.link_for(world.practitioner) == LINK


def test_without_link_the_schedule_answers_and_calcom_is_not_asked(
    fake_calcom: FakeCalcom,
) -> None:
    world = World(make_gateway(fake_calcom, links={999: LINK}), stored_link=False)
    assert world.calendar.link_for(world.practitioner) is None
    result = availability(world)
    assert result.source == "schedule"
    assert starts(result.slots) == SCHEDULE_STARTS
    assert fake_calcom.requests == []


# -- the request and the answer ------------------------------------------------------------------


def test_slots_request_is_exactly_what_calcom_v2_expects(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom))
    assert availability(world).source == "calcom"
    [request] = fake_calcom.requests
    assert request.method == "GET"
    assert request.path == "/v2/slots"
    assert request.query == {
        "eventTypeId": "1001",
        "start": "2030-01-07T23:00:00Z",  # local midnight in Berlin, in UTC
        "end": "2030-01-08T23:00:00Z",
        "timeZone": "Europe/Berlin",
    }
    assert request.headers["cal-api-version"] == "2024-09-04"
    assert request.headers["authorization"] == f"Bearer {fake_calcom.api_key}"


def test_slug_link_sends_event_type_slug_and_username(fake_calcom: FakeCalcom) -> None:
    gateway = make_gateway(fake_calcom)
    link = CalendarLink("consultation", username="dr-ada")
    slots = gateway.free_slots(link, SERVICE, WINDOW, "Europe/Berlin")
    assert starts(slots) == CALCOM_STARTS
    [request] = fake_calcom.requests
    assert request.query == {
        "eventTypeSlug": "consultation",
        "username": "dr-ada",
        "start": "2030-01-07T23:00:00Z",
        "end": "2030-01-08T23:00:00Z",
        "timeZone": "Europe/Berlin",
    }


@pytest.mark.parametrize("range_format", [False, True], ids=["time", "range"])
def test_slots_become_aware_utc_intervals_one_service_long(
    fake_calcom: FakeCalcom, range_format: bool
) -> None:
    fake_calcom.range_format = range_format
    # A day outside the window (Cal.com has sent those, issue #24260) is dropped.
    fake_calcom.offer(EVENT_TYPE_ID, [datetime(2030, 1, 8, 23, 30, tzinfo=UTC)])
    thirty = Service(id=2, name="Short", duration_minutes=30, price=Money(4000, "eur"))
    slots = make_gateway(fake_calcom).free_slots(LINK, thirty, WINDOW, "Europe/Berlin")
    assert slots == [Interval(s, s + timedelta(minutes=30)) for s in CALCOM_STARTS]
    assert all(s.start.tzinfo is UTC for s in slots)
    body = fake_calcom.requests[0]
    assert body.path == "/v2/slots"


def test_answer_without_success_envelope_is_calendar_unavailable(fake_calcom: FakeCalcom) -> None:
    fake_calcom.garbage_next(3)
    with pytest.raises(CalendarUnavailable, match="not a JSON object"):
        make_gateway(fake_calcom).free_slots(LINK, SERVICE, WINDOW, "Europe/Berlin")


def test_wrong_version_header_gets_404_and_is_unavailable(fake_calcom: FakeCalcom) -> None:
    gateway = make_gateway(fake_calcom, slots_api_version="2024-04-15")
    with pytest.raises(CalendarUnavailable, match="404"):
        gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    assert fake_calcom.requests[0].headers["cal-api-version"] == "2024-04-15"


def test_transport_alone_returns_answers_that_show_calcom_up_for_the_caller_to_read(
    fake_calcom: FakeCalcom,
) -> None:
    client = CalcomClient(
        api_key=fake_calcom.api_key,
        api_url=fake_calcom.url,
        sleep=RecordingSleep(),
        clock=ManualClock(),
    )
    answer = client.call(
        "slots query", "GET", "/slots", version="2024-04-15", params={}, idempotent=True
    )
    assert answer.status == 404  # a 4xx shows Cal.com up: not a failure, not retried
    assert answer.message  # read from the v2 error envelope
    assert len(fake_calcom.requests) == 1
    assert fake_calcom.requests[0].headers["cal-api-version"] == "2024-04-15"
    assert client.breaker.state is BreakerState.CLOSED
    client.close()


def test_bad_key_is_not_retried_and_never_shows_in_messages_or_logs(
    fake_calcom: FakeCalcom, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "cal_live_supersecret_key_that_must_not_leak"
    gateway = CalComCalendarGateway(
        api_key=secret, api_url=fake_calcom.url, sleep=RecordingSleep(), clock=ManualClock()
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CalendarUnavailable) as raised:
        gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    assert "401" in str(raised.value)
    assert len(fake_calcom.requests) == 1  # a wrong key does not get better by retrying
    fake_calcom.fail_next(5)
    with pytest.raises(CalendarUnavailable):
        gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    texts = [str(raised.value), repr(gateway), *(r.getMessage() for r in caplog.records)]
    assert not any(secret in text for text in texts)


def test_v1_url_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="API v1"):
        CalComCalendarGateway(api_key="k", api_url="https://api.cal.com/v1")
    with pytest.raises(ValueError, match="API v1"):
        CalComCalendarGateway(api_key="k", api_url="https://api.cal.com/v1/")


# -- fallback to the schedule --------------------------------------------------------------------


def test_availability_comes_from_calcom_when_it_is_healthy(fake_calcom: FakeCalcom) -> None:
    result = availability(World(make_gateway(fake_calcom)))
    assert result.source == "calcom"
    assert starts(result.slots) == CALCOM_STARTS


def test_availability_falls_back_to_schedule_on_server_errors(fake_calcom: FakeCalcom) -> None:
    fake_calcom.failing_status = 500
    result = availability(World(make_gateway(fake_calcom)))
    assert result.source == "schedule"
    assert starts(result.slots) == SCHEDULE_STARTS
    assert slot_requests(fake_calcom) == 3  # GET is retried twice


def test_availability_falls_back_to_schedule_on_a_timeout(fake_calcom: FakeCalcom) -> None:
    fake_calcom.hang_seconds = 5
    gateway = make_gateway(fake_calcom, read_timeout=0.2, call_budget=1.0, clock=time.monotonic)
    began = time.perf_counter()
    result = availability(World(gateway))
    elapsed = time.perf_counter() - began
    assert result.source == "schedule"
    assert starts(result.slots) == SCHEDULE_STARTS
    assert elapsed < 1.5


def test_availability_falls_back_to_schedule_on_a_refused_connection(
    fake_calcom: FakeCalcom, closed_port_url: str
) -> None:
    gateway = make_gateway(api_url=closed_port_url, clock=time.monotonic)
    result = availability(World(gateway))
    assert result.source == "schedule"
    assert starts(result.slots) == SCHEDULE_STARTS


def test_availability_falls_back_when_calcom_stops_listening(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom, cache_seconds=0))
    assert availability(world).source == "calcom"
    fake_calcom.refuse()  # also cuts the pooled keep-alive connection
    assert availability(world).source == "schedule"
    fake_calcom.resume()
    assert availability(world).source == "calcom"


def test_our_occupying_bookings_are_subtracted_from_calcom_slots(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom))
    held = request_booking_at(world, CALCOM_STARTS[0])
    assert held.status is BookingStatus.PENDING
    # Cal.com knows nothing of our hold yet and still offers the time; we must not.
    assert CALCOM_STARTS[0] in starts(
        make_gateway(fake_calcom).free_slots(LINK, SERVICE, WINDOW, "Europe/Berlin")
    )
    result = availability(world)
    assert result.source == "calcom"
    assert starts(result.slots) == CALCOM_STARTS[1:]


# -- retries, rate limits, breaker, warnings -----------------------------------------------------


def test_get_is_retried_with_full_jitter_backoff(fake_calcom: FakeCalcom) -> None:
    sleep = RecordingSleep()
    gateway = make_gateway(fake_calcom, sleep=sleep, backoff_base=0.25)
    fake_calcom.fail_next(2, status=503)
    assert starts(gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")) == CALCOM_STARTS
    assert slot_requests(fake_calcom) == 3
    assert len(sleep.waits) == 2
    assert 0 <= sleep.waits[0] <= 0.25
    assert 0 <= sleep.waits[1] <= 0.5


def booking_request(start: datetime, booking_id: int = 7) -> CalendarBookingRequest:
    return CalendarBookingRequest(
        link=LINK,
        booking_id=booking_id,
        start=start,
        end=start + timedelta(hours=1),
        client=Client("Cleo Client", "cleo@example.com", "+4915112345678"),
        timezone="Europe/Berlin",
    )


def test_create_booking_sends_the_v2_body(fake_calcom: FakeCalcom) -> None:
    uid = make_gateway(fake_calcom).create_booking(booking_request(CALCOM_STARTS[0], 7))
    [request] = fake_calcom.requests
    assert (request.method, request.path) == ("POST", "/v2/bookings")
    assert request.headers["cal-api-version"] == "2024-08-13"
    assert request.headers["authorization"] == f"Bearer {fake_calcom.api_key}"
    assert request.body == {
        "start": "2030-01-08T08:30:00Z",
        "eventTypeId": 1001,
        "attendee": {
            "name": "Cleo Client",
            "email": "cleo@example.com",
            "timeZone": "Europe/Berlin",
            "phoneNumber": "+4915112345678",
        },
        "lengthInMinutes": 60,
        "metadata": {"booking_id": "7"},
    }
    assert fake_calcom.bookings[uid]["status"] == "accepted"


def test_create_booking_asks_for_the_services_length(fake_calcom: FakeCalcom) -> None:
    fake_calcom.add_event_type(2002, slug="flexible", length=60, length_options=(45, 60, 90))
    request = attrs.evolve(
        booking_request(CALCOM_STARTS[0], 8),
        link=CalendarLink(event_type="2002"),
        end=CALCOM_STARTS[0] + timedelta(minutes=45),
    )
    fake_calcom.offer(2002, [CALCOM_STARTS[0]])
    uid = make_gateway(fake_calcom).create_booking(request)
    created = fake_calcom.bookings[uid]
    assert (created["duration"], created["end"]) == (45, "2030-01-08T09:15:00.000Z")
    # A length the event type does not offer is refused by Cal.com, not silently changed.
    fake_calcom.offer(1001, [CALCOM_STARTS[1]])
    wrong = attrs.evolve(
        booking_request(CALCOM_STARTS[1], 9), end=CALCOM_STARTS[1] + timedelta(minutes=45)
    )
    with pytest.raises(CalendarUnavailable, match="lengthInMinutes"):
        make_gateway(fake_calcom).create_booking(wrong)


def test_create_is_not_retried_after_a_server_error(fake_calcom: FakeCalcom) -> None:
    fake_calcom.fail_next(1, method="POST", path="/v2/bookings")
    with pytest.raises(CalendarUnavailable, match="500"):
        make_gateway(fake_calcom).create_booking(booking_request(CALCOM_STARTS[0]))
    assert len(fake_calcom.requests_to("/v2/bookings", "POST")) == 1
    assert fake_calcom.live_bookings() == []


def test_create_is_retried_after_a_short_rate_limit_honouring_its_reset(
    fake_calcom: FakeCalcom,
) -> None:
    clock = ManualClock()
    sleep = RecordingSleep(clock)
    gateway = make_gateway(fake_calcom, clock=clock, sleep=sleep, call_budget=3.0)
    fake_calcom.rate_limit_next(1, reset_seconds=1)
    uid = gateway.create_booking(booking_request(CALCOM_STARTS[0]))
    assert uid in fake_calcom.bookings
    assert len(fake_calcom.requests_to("/v2/bookings", "POST")) == 2
    assert sleep.waits
    assert sleep.waits[0] >= 1.0


def test_retry_after_header_is_honoured(fake_calcom: FakeCalcom) -> None:
    clock = ManualClock()
    sleep = RecordingSleep(clock)
    gateway = make_gateway(fake_calcom, clock=clock, sleep=sleep, call_budget=5.0)
    fake_calcom.rate_limit_next(1, reset_seconds=0, retry_after="2")
    assert gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    assert sleep.waits[0] >= 2.0


def test_long_rate_limit_keeps_calcom_skipped_until_it_resets(fake_calcom: FakeCalcom) -> None:
    clock = ManualClock()
    gateway = make_gateway(fake_calcom, clock=clock, sleep=RecordingSleep(clock))
    fake_calcom.rate_limit_next(1, reset_seconds=120)
    with pytest.raises(CalendarUnavailable, match="rate limited"):
        gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    assert len(fake_calcom.requests) == 1  # 120 s does not fit the budget: no waiting, no retry
    clock.advance(60)
    with pytest.raises(CalendarUnavailable, match="circuit open"):
        gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    assert len(fake_calcom.requests) == 1
    clock.advance(61)
    assert gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")


def test_breaker_opens_after_repeated_failures_and_closes_after_cooldown(
    fake_calcom: FakeCalcom,
) -> None:
    clock = ManualClock()
    gateway = make_gateway(
        fake_calcom, clock=clock, max_retries=0, breaker_threshold=3, breaker_cooldown=30
    )
    fake_calcom.failing_status = 502
    for _ in range(3):
        with pytest.raises(CalendarUnavailable, match="502"):
            gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    assert gateway.breaker.state is BreakerState.OPEN
    for _ in range(10):
        with pytest.raises(CalendarUnavailable, match="circuit open"):
            gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    assert len(fake_calcom.requests) == 3  # fail fast without touching the network

    clock.advance(31)
    fake_calcom.failing_status = None
    assert gateway.breaker.state is BreakerState.HALF_OPEN
    assert starts(gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")) == CALCOM_STARTS
    assert gateway.breaker.state is BreakerState.CLOSED
    assert len(fake_calcom.requests) == 4


def test_failed_trial_call_reopens_the_breaker(fake_calcom: FakeCalcom) -> None:
    clock = ManualClock()
    gateway = make_gateway(
        fake_calcom, clock=clock, max_retries=0, breaker_threshold=2, breaker_cooldown=10
    )
    fake_calcom.failing_status = 500
    for _ in range(2):
        with pytest.raises(CalendarUnavailable):
            gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    clock.advance(11)
    with pytest.raises(CalendarUnavailable, match="500"):
        gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")  # the one trial
    assert gateway.breaker.state is BreakerState.OPEN
    with pytest.raises(CalendarUnavailable, match="circuit open"):
        gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")
    assert len(fake_calcom.requests) == 3


def test_failures_warn_at_most_once_per_cooldown(
    fake_calcom: FakeCalcom, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    gateway = make_gateway(
        fake_calcom, clock=clock, max_retries=0, breaker_threshold=3, breaker_cooldown=30
    )
    fake_calcom.failing_status = 500
    caplog.set_level(logging.WARNING, logger="adapters.calcom")

    def fail_many() -> None:
        for _ in range(8):
            with pytest.raises(CalendarUnavailable):
                gateway.free_slots(LINK, SERVICE, WINDOW, "UTC")

    fail_many()
    assert len(caplog.records) == 1
    clock.advance(31)
    fail_many()
    assert len(caplog.records) == 2
    assert all(fake_calcom.api_key not in r.getMessage() for r in caplog.records)


# -- cache ---------------------------------------------------------------------------------------


def test_second_availability_is_served_from_the_cache(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom))
    first = availability(world)
    second = availability(world)
    assert first.slots == second.slots
    assert second.source == "calcom"
    assert slot_requests(fake_calcom) == 1


def test_invalidation_drops_the_practitioners_entries(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom))
    availability(world)
    world.calendar.invalidate(world.practitioner_id + 1)  # someone else: still cached
    availability(world)
    assert slot_requests(fake_calcom) == 1
    world.calendar.invalidate(world.practitioner_id)
    availability(world)
    assert slot_requests(fake_calcom) == 2


def test_cache_entries_expire_after_cache_seconds(fake_calcom: FakeCalcom) -> None:
    clock = ManualClock()
    world = World(make_gateway(fake_calcom, clock=clock, cache_seconds=300))
    availability(world)
    clock.advance(299)
    availability(world)
    assert slot_requests(fake_calcom) == 1
    clock.advance(2)
    availability(world)
    assert slot_requests(fake_calcom) == 2


def test_cache_hit_needs_no_calcom_even_with_the_breaker_open(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom, max_retries=0, breaker_threshold=1))
    assert availability(world).source == "calcom"
    fake_calcom.failing_status = 500
    with pytest.raises(CalendarUnavailable):
        world.calendar.free_slots(LINK, SERVICE, WINDOW, "UTC")  # another window: opens
    assert world.calendar.breaker.state is BreakerState.OPEN
    assert availability(world).source == "calcom"


def test_a_fetch_that_raced_an_invalidation_is_not_served() -> None:
    cache = InMemorySlotCache()
    found = cache.get("k", (1,))
    cache.invalidate(1)  # we booked while the fetch was in flight
    cache.put("k", (1,), found.stamp, [Interval(*CALCOM_STARTS)], ttl=60)
    assert cache.get("k", (1,)).slots is None


def test_redis_cache_is_shared_by_gateways_of_two_processes(
    fake_calcom: FakeCalcom, redis_cache_factory
) -> None:  # type: ignore[no-untyped-def]
    web = World(make_gateway(fake_calcom, cache=redis_cache_factory()))
    worker_gateway = make_gateway(fake_calcom, cache=redis_cache_factory())
    worker = World(worker_gateway)  # its own store; same practitioner id and link
    assert worker.practitioner_id == web.practitioner_id

    assert availability(web).source == "calcom"
    assert starts(availability(worker).slots) == CALCOM_STARTS
    assert slot_requests(fake_calcom) == 1  # the second process hit the shared entry

    worker_gateway.invalidate(web.practitioner_id)  # e.g. the worker synced a booking
    availability(web)
    assert slot_requests(fake_calcom) == 2


def test_database_cache_is_shared_by_gateways_of_two_processes(
    fake_calcom: FakeCalcom, clean_database
) -> None:  # type: ignore[no-untyped-def]
    from adapters.postgres import Database

    # Two Database objects: two processes' pools on one database.
    other = Database.connect(clean_database.url.render_as_string(hide_password=False))
    try:
        web = World(make_gateway(fake_calcom, cache=PostgresSlotCache(clean_database.engine)))
        worker_gateway = make_gateway(fake_calcom, cache=PostgresSlotCache(other.engine))
        worker = World(worker_gateway)
        assert availability(web).source == "calcom"
        assert starts(availability(worker).slots) == CALCOM_STARTS
        assert slot_requests(fake_calcom) == 1  # the second process hit the shared entry

        worker_gateway.invalidate(web.practitioner_id)
        availability(web)
        assert slot_requests(fake_calcom) == 2
        availability(worker)
        assert slot_requests(fake_calcom) == 2  # refetched once, shared again
    finally:
        other.dispose()


def test_database_cache_expires_and_never_raises(clean_database) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    cache = PostgresSlotCache(clean_database.engine)
    slot = Interval(datetime(2030, 1, 8, 9, tzinfo=UTC), datetime(2030, 1, 8, 10, tzinfo=UTC))
    lookup = cache.get("k", [1, 2])
    assert lookup.slots is None
    assert lookup.stamp == (0, 0)
    cache.put("k", [1, 2], lookup.stamp, [slot], ttl=60)
    assert cache.get("k", [1, 2]).slots == [slot]
    stale = cache.get("k", [1, 2]).stamp
    cache.invalidate(2)
    assert cache.get("k", [1, 2]).slots is None
    cache.put("k", [1, 2], stale, [slot], ttl=60)  # fetched before the invalidation
    assert cache.get("k", [1, 2]).slots is None
    with clean_database.engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE calendar_cache SET expires_at = now() - interval '1s'"
                " WHERE key LIKE '%slots:%'"
            )
        )
    fresh = cache.get("k", [1, 2])
    cache.put("k", [1, 2], fresh.stamp, [slot], ttl=60)
    assert cache.get("k", [1, 2]).slots == [slot]
    with clean_database.engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE calendar_cache SET expires_at = now() - interval '1s'"
                " WHERE key LIKE '%slots:%'"
            )
        )
    assert cache.get("k", [1, 2]).slots is None  # expired

    from adapters.postgres import Database

    dead = Database.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
    broken = PostgresSlotCache(dead.engine)
    assert broken.get("k", [1]).slots is None  # a miss, not an error
    broken.put("k", [1], (0,), [slot], ttl=60)
    broken.invalidate(1)
    dead.dispose()


def test_redis_race_with_invalidation_and_unreadable_entries(redis_cache_factory) -> None:  # type: ignore[no-untyped-def]
    cache: RedisSlotCache = redis_cache_factory()
    found = cache.get("k", (5,))
    cache.invalidate(5)
    cache.put("k", (5,), found.stamp, [Interval(*CALCOM_STARTS)], ttl=60)
    assert cache.get("k", (5,)).slots is None
    fresh = cache.get("k", (5,))
    cache.put("k", (5,), fresh.stamp, [Interval(*CALCOM_STARTS)], ttl=60)
    assert cache.get("k", (5,)).slots == [Interval(*CALCOM_STARTS)]
    cache._client.set(f"{cache.prefix}slots:k", b"{not json")
    assert cache.get("k", (5,)).slots is None


def test_dead_redis_means_uncached_not_broken(
    fake_calcom: FakeCalcom, closed_port_url: str
) -> None:
    port = closed_port_url.split(":")[2].split("/")[0]
    cache = RedisSlotCache(f"redis://127.0.0.1:{port}", socket_timeout=0.2)
    world = World(make_gateway(fake_calcom, cache=cache))
    assert availability(world).source == "calcom"
    assert availability(world).source == "calcom"
    world.calendar.invalidate(world.practitioner_id)
    assert slot_requests(fake_calcom) == 2
    cache.close()


# -- calendar sync jobs --------------------------------------------------------------------------


def request_booking_at(  # type: ignore[no-untyped-def]
    world: World, start: datetime, client: Client | None = None
):
    from booking_core.usecases import RequestBooking

    return request_booking(
        RequestBooking(
            practitioner_id=world.practitioner_id,
            service_id=world.service_id,
            start=start,
            client=client or Client("Cleo Client", "cleo@example.com"),
        ),
        uow=world.uow(),
        payments=world.payments,
        calendar=world.calendar,
        clock=world.clock,
        rules=world.rules,
    ).booking


def confirmed_booking(world: World, start: datetime, client: Client | None = None) -> int:
    """Hold the slot, pay for it, deliver the webhook: the booking is confirmed, jobs queued."""
    booking = request_booking_at(world, start, client)
    session = world.payments.complete(booking.checkout_session_id)
    body = world.payments.event_for(session.id, "checkout.session.completed")
    event = world.payments.parse_event(body, sign_fake_event(body, world.payments.webhook_secret))
    outcome = handle_payment_event(
        event, uow=world.uow(), calendar=world.calendar, clock=world.clock, rules=world.rules
    )
    assert outcome == "confirmed"
    return booking.id or 0


def stored(world: World, booking_id: int):  # type: ignore[no-untyped-def]
    with world.uow() as uow:
        return uow.bookings.get(booking_id)


def calendar_jobs(world: World, status: JobStatus):  # type: ignore[no-untyped-def]
    with world.uow() as uow:
        return [j for j in uow.outbox.list(status) if j.kind.startswith("calendar.")]


def run_jobs_later(world: World, hours: int = 2) -> dict[str, int]:
    world.clock.advance(timedelta(hours=hours))
    return run_due_jobs(world.job_context())


def test_sync_job_creates_the_calcom_booking_and_stores_its_uid(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom))
    booking_id = confirmed_booking(world, CALCOM_STARTS[0])
    counts = run_due_jobs(world.job_context())
    assert counts["parked"] == 0
    assert counts["retried"] == 0
    [created] = fake_calcom.live_bookings()
    assert created["metadata"] == {"booking_id": str(booking_id)}
    assert created["start"] == "2030-01-08T08:30:00.000Z"
    assert created["attendees"][0]["email"] == "cleo@example.com"
    assert stored(world, booking_id).calendar_uid == created["uid"]
    assert calendar_jobs(world, JobStatus.DONE)


def test_sync_job_books_in_the_clients_time_zone(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom))
    client = Client("Cleo Client", "cleo@example.com", timezone="America/Chicago")
    confirmed_booking(world, CALCOM_STARTS[0], client)
    assert run_due_jobs(world.job_context())["parked"] == 0
    [created] = fake_calcom.live_bookings()
    assert created["attendees"][0]["timeZone"] == "America/Chicago"  # not the practitioner's
    [sent] = fake_calcom.requests_to("/v2/bookings", "POST")
    assert sent.body["lengthInMinutes"] == 60


def test_sync_job_is_retried_after_a_calcom_failure(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom))
    booking_id = confirmed_booking(world, CALCOM_STARTS[0])
    fake_calcom.fail_next(1, method="POST", path="/v2/bookings")
    assert run_due_jobs(world.job_context())["retried"] == 1
    [pending] = calendar_jobs(world, JobStatus.PENDING)
    assert "500" in pending.last_error
    assert pending.attempts == 1
    assert stored(world, booking_id).calendar_uid is None

    assert run_jobs_later(world)["done"] >= 1
    [created] = fake_calcom.live_bookings()
    assert stored(world, booking_id).calendar_uid == created["uid"]
    assert len(fake_calcom.requests_to("/v2/bookings", "POST")) == 2


def test_sync_job_parks_with_a_clear_error_when_calcom_has_the_slot_taken(
    fake_calcom: FakeCalcom,
) -> None:
    world = World(make_gateway(fake_calcom))
    booking_id = confirmed_booking(world, CALCOM_STARTS[0])
    fake_calcom.book_directly(EVENT_TYPE_ID, CALCOM_STARTS[0])  # booked in Cal.com meanwhile
    assert run_due_jobs(world.job_context())["parked"] == 1
    [parked] = calendar_jobs(world, JobStatus.PARKED)
    assert f"refused paid booking {booking_id}" in parked.last_error
    assert "already has booking at this time" in parked.last_error
    assert stored(world, booking_id).calendar_uid is None


def test_lost_create_answer_is_recovered_without_a_duplicate(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom, read_timeout=0.3, clock=time.monotonic))
    booking_id = confirmed_booking(world, CALCOM_STARTS[0])
    fake_calcom.lose_answer_next(1, seconds=2, method="POST", path="/v2/bookings")
    assert run_due_jobs(world.job_context())["retried"] == 1  # Cal.com booked, we never heard
    assert len(fake_calcom.live_bookings()) == 1

    assert run_jobs_later(world)["done"] >= 1
    [created] = fake_calcom.live_bookings()
    assert stored(world, booking_id).calendar_uid == created["uid"]
    lookup = fake_calcom.requests_to("/v2/bookings", "GET")[0]
    assert lookup.query["attendeeEmail"] == "cleo@example.com"


def test_cancel_job_cancels_in_calcom_and_a_repeat_is_harmless(fake_calcom: FakeCalcom) -> None:
    world = World(make_gateway(fake_calcom))
    booking_id = confirmed_booking(world, CALCOM_STARTS[0])
    run_due_jobs(world.job_context())
    uid = stored(world, booking_id).calendar_uid
    cancel_booking(
        CancelBooking(booking_id=booking_id, reason="client asked"),
        uow=world.uow(),
        payments=world.payments,
        calendar=world.calendar,
        clock=world.clock,
        rules=world.rules,
    )
    assert run_due_jobs(world.job_context())["parked"] == 0
    assert fake_calcom.bookings[uid]["status"] == "cancelled"
    [cancel] = fake_calcom.requests_to(f"/v2/bookings/{uid}/cancel")
    assert cancel.body == {"cancellationReason": "Cancelled through the booking service"}
    assert cancel.headers["cal-api-version"] == "2024-08-13"
    world.calendar.cancel_booking(uid, "again")  # already cancelled: not an error


def test_reschedule_job_moves_the_calcom_booking_and_stores_the_new_uid(
    fake_calcom: FakeCalcom,
) -> None:
    world = World(make_gateway(fake_calcom))
    booking_id = confirmed_booking(world, CALCOM_STARTS[0])
    run_due_jobs(world.job_context())
    old_uid = stored(world, booking_id).calendar_uid
    reschedule_booking(
        RescheduleBooking(booking_id=booking_id, new_start=CALCOM_STARTS[1], reason="moved"),
        uow=world.uow(),
        calendar=world.calendar,
        clock=world.clock,
        rules=world.rules,
    )
    assert run_due_jobs(world.job_context())["parked"] == 0
    new_uid = stored(world, booking_id).calendar_uid
    assert new_uid
    assert new_uid != old_uid
    assert fake_calcom.bookings[new_uid]["start"] == "2030-01-08T12:30:00.000Z"
    assert fake_calcom.bookings[old_uid]["status"] == "cancelled"
    [move] = fake_calcom.requests_to(f"/v2/bookings/{old_uid}/reschedule")
    assert move.body == {"start": "2030-01-08T12:30:00Z", "reschedulingReason": "moved"}
    # A repeat after a lost answer finds the booking it was moved to instead of failing.
    assert world.calendar.reschedule_booking(old_uid, CALCOM_STARTS[1], "again") == new_uid


def test_reschedule_into_a_taken_slot_is_slot_taken(fake_calcom: FakeCalcom) -> None:
    gateway = make_gateway(fake_calcom)
    uid = gateway.create_booking(booking_request(CALCOM_STARTS[0]))
    fake_calcom.book_directly(EVENT_TYPE_ID, CALCOM_STARTS[1])
    with pytest.raises(CalendarSlotTaken):
        gateway.reschedule_booking(uid, CALCOM_STARTS[1], "r")


# -- timing budget -------------------------------------------------------------------------------


@pytest.mark.slow
def test_hanging_calcom_with_default_settings_answers_within_five_seconds(
    fake_calcom: FakeCalcom,
) -> None:
    fake_calcom.hang_seconds = 30
    gateway = CalComCalendarGateway(api_key=fake_calcom.api_key, api_url=fake_calcom.url)
    world = World(gateway)
    began = time.perf_counter()
    result = availability(world)
    elapsed = time.perf_counter() - began
    print(f"\nhanging Cal.com, default timeouts: availability from the schedule in {elapsed:.2f} s")
    assert result.source == "schedule"
    assert elapsed < 5.0


def test_hanging_calcom_answers_within_the_budget_then_fast_with_the_breaker_open(
    fake_calcom: FakeCalcom,
) -> None:
    fake_calcom.hang_seconds = 30
    gateway = make_gateway(
        fake_calcom,
        connect_timeout=0.2,
        read_timeout=0.2,
        call_budget=0.6,
        breaker_threshold=2,
        clock=time.monotonic,
        cache_seconds=0,
    )
    world = World(gateway)
    figures = []
    for _ in range(2):
        began = time.perf_counter()
        assert availability(world).source == "schedule"
        figures.append(time.perf_counter() - began)
    assert gateway.breaker.state is BreakerState.OPEN
    open_figures = []
    for _ in range(20):
        began = time.perf_counter()
        assert availability(world).source == "schedule"
        open_figures.append(time.perf_counter() - began)
    worst_open = max(open_figures)
    print(
        f"\nhanging Cal.com (0.2 s timeouts, 0.6 s budget): {figures[0]:.3f} s, {figures[1]:.3f} s;"
        f" breaker open: worst {worst_open * 1000:.1f} ms of 20"
    )
    assert all(f < 1.5 for f in figures)
    assert worst_open < 0.05


def test_bootstrap_shares_the_cache_through_the_database_without_redis(
    database_url: str,
) -> None:
    from entrypoints.bootstrap import bootstrap
    from entrypoints.settings import Settings

    deps = bootstrap(Settings(env="test", database_url=database_url, calcom_api_key="cal_test_key"))
    try:
        assert deps.live["calendar"].endswith("(database cache)")
        assert isinstance(deps.calendar, CalComCalendarGateway)
    finally:
        deps.close()
    with_redis = bootstrap(
        Settings(
            env="test",
            database_url=database_url,
            calcom_api_key="cal_test_key",
            redis_url="redis://127.0.0.1:6379",
        )
    )
    try:
        assert with_redis.live["calendar"].endswith("(Redis cache)")
    finally:
        with_redis.close()
