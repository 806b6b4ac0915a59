"""Which Cal.com link a practitioner has, and which practitioners a link belongs to.

A link stored on the practitioner wins over the environment's (``CALCOM_EVENT_TYPE_<id>``).
Cached slots are owned by practitioners (so ``invalidate(practitioner_id)`` works in any
process), while ``free_slots`` only gets a link: ``link_for``, which the core always calls first,
teaches the registry who owns each link.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from booking_core.model import CalendarLink, Practitioner


class OwnerRegistry:
    """Links from the environment plus the owners learnt from stored links (thread-safe)."""

    def __init__(self, links: Mapping[int, CalendarLink] | None = None) -> None:
        self._links = dict(links or {})
        self._lock = threading.Lock()
        self._owners: dict[CalendarLink, set[int]] = {}
        for practitioner_id, link in self._links.items():
            self._owners.setdefault(link, set()).add(practitioner_id)

    def link_for(self, practitioner: Practitioner) -> CalendarLink | None:
        """The link stored on the practitioner, else the environment's, else None."""
        link = practitioner.calendar_link
        if link is None and practitioner.id is not None:
            link = self._links.get(practitioner.id)
        if link is not None and practitioner.id is not None:
            with self._lock:
                self._owners.setdefault(link, set()).add(practitioner.id)
        return link

    def owners_of(self, link: CalendarLink) -> tuple[int, ...]:
        """The practitioner ids known to use ``link``, sorted (empty: nobody owns an entry)."""
        with self._lock:
            return tuple(sorted(self._owners.get(link, ())))
