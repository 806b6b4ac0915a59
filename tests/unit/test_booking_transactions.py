"""POST /api/bookings in at most three transactions (issue 11, item 3).

Counted on the memory adapters: every ``with uow:`` is one transaction, as on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.memory import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork

from .http_support import Int8Store, Web


class _CountingUnitOfWork(InMemoryUnitOfWork):
    def __init__(self, store: InMemoryStore, log: list[str]) -> None:
        super().__init__(store)
        self._log = log

    def __enter__(self) -> Any:
        self._log.append("begin")
        return super().__enter__()

    def commit(self) -> None:
        self._log.append("commit")
        super().commit()


@pytest.fixture
def counted() -> tuple[Web, list[str]]:
    store = Int8Store()
    log: list[str] = []
    return Web(store=store, uow_factory=lambda: _CountingUnitOfWork(store, log)), log


@pytest.mark.parametrize("key", [None, "count-me"])
def test_a_booking_request_takes_at_most_three_transactions(
    counted: tuple[Web, list[str]], key: str | None
) -> None:
    web, log = counted
    log.clear()
    response = web.book(headers={"Idempotency-Key": key} if key else {})
    assert response.status_code == 201, response.get_data(as_text=True)
    transactions = log.count("begin")
    assert transactions <= 3, log
    # The hold, then the checkout stored (with the idempotency answer) together.
    assert log.count("commit") >= 2
    if key:
        assert web.store.idempotency[key].status_code == 201


def test_a_replayed_request_takes_one_transaction(counted: tuple[Web, list[str]]) -> None:
    web, log = counted
    first = web.book(headers={"Idempotency-Key": "again"})
    log.clear()
    again = web.book(headers={"Idempotency-Key": "again"})
    assert again.get_json() == first.get_json()
    assert log.count("begin") == 1
