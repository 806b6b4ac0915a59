"""The worker during an outage: one WARNING line per cool-down, no traceback, then a recovery."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from adapters.memory import FakePaymentGateway, FixedClock, InMemoryStore, RecordingNotifier
from adapters.postgres import DatabaseUnavailable
from adapters.schedule import ScheduleCalendarGateway
from entrypoints.bootstrap import bootstrap
from entrypoints.settings import Settings
from entrypoints.worker import OutageLog, run_forever


class _DownUnitOfWork:
    """What a unit of work does while PostgreSQL is down: fails on the first use."""

    def __enter__(self) -> Any:
        raise DatabaseUnavailable(
            "PostgreSQL at db.internal:5432/booking is unavailable: connection refused"
        )

    def __exit__(self, *exc: object) -> None:
        return None


class Flaky:
    def __init__(self) -> None:
        self.store = InMemoryStore()
        self.down = True
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return _DownUnitOfWork() if self.down else self.store.unit_of_work()


def _wait_for(condition: Any, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_an_outage_is_logged_once_as_one_warning_line_then_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = Flaky()
    deps = bootstrap(
        Settings(env="test"),
        uow_factory=flaky,
        clock=FixedClock(),
        payments=FakePaymentGateway(checkout_base_url="http://booking.test"),
        calendar=ScheduleCalendarGateway(),
        notifier=RecordingNotifier(),
    )
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="booking.worker")
    worker = threading.Thread(target=run_forever, args=(deps, stop), kwargs={"interval": 0.01})
    worker.start()
    try:
        _wait_for(lambda: flaky.calls >= 20)  # twenty failed passes
        flaky.down = False
        healthy_from = flaky.calls
        _wait_for(lambda: flaky.calls >= healthy_from + 10)  # a few good passes
    finally:
        stop.set()
        worker.join(timeout=10)
    records = [r for r in caplog.records if r.name == "booking.worker"]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    (warning,) = warnings
    assert warning.levelno == logging.WARNING
    assert warning.exc_info is None  # no traceback
    assert "\n" not in warning.getMessage()
    assert "DatabaseUnavailable" in warning.getMessage()
    recovered = [r for r in records if "again" in r.getMessage()]
    assert len(recovered) == 1
    assert recovered[0].levelno == logging.INFO


def test_the_outage_is_noted_again_after_each_cooldown(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    outages = OutageLog(cooldown=60, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="booking.worker")
    error = DatabaseUnavailable("the database is unavailable")
    for moment in (0.0, 5.0, 30.0, 59.0, 60.0, 65.0, 125.0):
        now[0] = moment
        outages.failed(error, retry_in=5)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert ["(1 in a row)" in warnings[0].getMessage(), len(warnings)] == [True, 3]
    assert "(5 in a row)" in warnings[1].getMessage()


def test_a_bug_keeps_its_traceback_once_per_cooldown(caplog: pytest.LogCaptureFixture) -> None:
    outages = OutageLog(cooldown=60, clock=lambda: 0.0)
    caplog.set_level(logging.INFO, logger="booking.worker")
    for _ in range(3):
        outages.failed(KeyError("booking_id"), retry_in=5)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.exc_info is not None
