"""In-memory adapters with the semantics of the real ones, for tests here and in other services.

- ``InMemoryStore`` is the "database": committed state, sequences, one lock.
- ``InMemoryUnitOfWork`` stages writes and applies them on ``commit()`` only; reads see committed
  state plus this unit's own writes; objects handed out are copies, so changing one without
  ``save`` changes nothing. The no-overlap rule of the PostgreSQL exclusion constraint is enforced
  on add/save (also against other units' uncommitted inserts, as PostgreSQL does) and re-checked
  at commit; saves are version-checked like SQLAlchemy's ``version_id_col``.
- Fakes for the payment gateway, the calendar, the notifier and the clock that can be told to fail.
"""

from adapters.memory.gateways import (
    FakeCalendarGateway,
    FakePaymentGateway,
    FixedClock,
    RecordingNotifier,
    sign_fake_event,
)
from adapters.memory.store import InMemoryStore, InMemoryUnitOfWork

__all__ = [
    "FakeCalendarGateway",
    "FakePaymentGateway",
    "FixedClock",
    "InMemoryStore",
    "InMemoryUnitOfWork",
    "RecordingNotifier",
    "sign_fake_event",
]
