"""The per-process practitioner cache, kept current by PostgreSQL notifications.

Availability reads a practitioner's schedule on every request; a process keeps a copy, and
every change to a practitioner (its services, hours, time off, link) sends
``NOTIFY practitioner_changed, '<id>'`` in the change's transaction, from triggers on those
tables (migration 0008), whoever makes the change; a TRUNCATE sends ``'*'``. PostgreSQL
delivers it to every listening process when that transaction commits, and each drops its copy
(every copy for ``'*'``): an edit shows in availability and bookings in every process at once,
with no query added to the hot path.

A copy is used only while this process is listening: before LISTEN is in place, or after the
listening connection broke (until it is back), every read goes to the database. Each entry is
stored with the practitioner's generation taken before the read, so a copy read before a
change whose notification arrived meanwhile is never kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg

from booking_core.model import Practitioner

log = logging.getLogger(__name__)

CHANNEL = "practitioner_changed"
# How long the listening thread waits for a notification before checking it should stop.
_POLL_SECONDS = 0.5
_RECONNECT_SECONDS = 2.0


class PractitionerCache:
    """Practitioners read recently in this process (thread-safe; hits are detached copies).

    Without a ``conninfo`` (a Database built by hand in a test) nothing is ever cached.
    """

    def __init__(
        self, conninfo: str | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._conninfo = conninfo
        self._clock = clock
        self._entries: dict[int, tuple[float, Practitioner]] = {}
        self._generations: dict[int, int] = {}
        self._epoch = 0  # moves on whenever listening starts or stops: older reads are unsafe
        self._listening = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # -- the cache ----------------------------------------------------------------------------

    def generation(self, practitioner_id: int) -> tuple[int, int] | None:
        """Take before reading from the database; None while a copy may not be kept."""
        self._ensure_listening()
        with self._lock:
            if not self._listening:
                return None
            return self._epoch, self._generations.get(practitioner_id, 0)

    def get(self, practitioner_id: int, max_age: float) -> Practitioner | None:
        with self._lock:
            entry = self._entries.get(practitioner_id) if self._listening else None
        if entry is None or self._clock() - entry[0] > max_age:
            return None
        return entry[1].copy()

    def put(self, practitioner: Practitioner, generation: tuple[int, int] | None) -> None:
        """Keep a copy read after ``generation`` was taken, unless it changed since."""
        if practitioner.id is None or generation is None:
            return
        stored = practitioner.copy()
        with self._lock:
            current = (self._epoch, self._generations.get(practitioner.id, 0))
            if self._listening and current == generation:
                self._entries[practitioner.id] = (self._clock(), stored)

    def drop(self, practitioner_id: int | None) -> None:
        """Forget the copy (a change was made or announced)."""
        if practitioner_id is None:
            return
        with self._lock:
            self._entries.pop(practitioner_id, None)
            self._generations[practitioner_id] = self._generations.get(practitioner_id, 0) + 1

    def drop_all(self) -> None:
        """Forget every copy; reads already under way are not kept either."""
        with self._lock:
            self._entries.clear()
            self._epoch += 1

    def _set_listening(self, listening: bool) -> None:
        with self._lock:
            self._listening = listening
            self._epoch += 1
            self._entries.clear()

    # -- the listening thread -----------------------------------------------------------------

    def _ensure_listening(self) -> None:
        if self._conninfo is None or self._thread is not None:
            return
        with self._lock:
            if self._thread is not None or self._stopped.is_set():
                return
            self._thread = threading.Thread(
                target=self._listen, name="practitioner-changes", daemon=True
            )
        self._thread.start()

    def _listen(self) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(
                    self._conninfo or "", autocommit=True, connect_timeout=3
                ) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._set_listening(True)
                    while not self._stopped.is_set():
                        for note in connection.notifies(timeout=_POLL_SECONDS):
                            if note.payload.isdigit():
                                self.drop(int(note.payload))
                            else:  # '*' (a table was truncated), or anything unexpected
                                self.drop_all()
            except (psycopg.Error, OSError) as exc:
                log.warning(
                    "practitioner cache off until the database answers: %s", type(exc).__name__
                )
            finally:
                self._set_listening(False)
            self._stopped.wait(_RECONNECT_SECONDS)

    def close(self) -> None:
        """Stop listening (the Database is being disposed)."""
        self._stopped.set()
        thread = self._thread
        if thread is not None:
            thread.join(_POLL_SECONDS + 4)

    def wait_listening(self, timeout: float = 5.0) -> bool:
        """For tests and start-up: start listening and wait until it is in place."""
        self._ensure_listening()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._listening:
                    return True
            time.sleep(0.01)
        return False
