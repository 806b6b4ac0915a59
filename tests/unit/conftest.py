"""Fixtures for the unit suite: the core wired by bootstrap() onto the memory adapters.

No Flask here: the HTTP tests bring their own fixtures in their own files.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.memory import (
    FakeCalendarGateway,
    FakePaymentGateway,
    FixedClock,
    InMemoryStore,
    RecordingNotifier,
)
from booking_core.policy import BookingRules
from entrypoints.bootstrap import bootstrap
from entrypoints.settings import Settings

from .support import NOW, App


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def app(store: InMemoryStore, clock: FixedClock) -> Iterator[App]:
    deps = bootstrap(
        Settings(env="test"),
        uow_factory=store.unit_of_work,
        payments=FakePaymentGateway(webhook_secret="whsec_unit"),
        calendar=FakeCalendarGateway(),
        notifier=RecordingNotifier(),
        clock=clock,
        rules=BookingRules(
            hold_minutes=30, cancellation_window_hours=24, link_secret=b"unit-link-secret"
        ),
    )
    yield App(deps, store)
    deps.close()
