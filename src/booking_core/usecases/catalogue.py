"""Catalogue use cases: the practitioners and services clients can book."""

from __future__ import annotations

import logging

from booking_core.errors import (
    PractitionerNotFound,
)
from booking_core.model import (
    Practitioner,
)
from booking_core.ports import (
    UnitOfWork,
)

log = logging.getLogger(__name__)


def list_practitioners(*, uow: UnitOfWork) -> list[Practitioner]:
    """Active practitioners with their services, by id."""
    with uow:
        return uow.practitioners.list(active_only=True)


def find_practitioner(
    practitioner_id: int, *, uow: UnitOfWork, max_age: float = 0.0
) -> Practitioner | None:
    """The practitioner, active or not (a booking's page names whoever it is with), or None."""
    with uow:
        return uow.practitioners.get(practitioner_id, max_age=max_age)


def get_practitioner(
    practitioner_id: int, *, uow: UnitOfWork, max_age: float = 0.0
) -> Practitioner:
    """Raises PractitionerNotFound for an unknown or inactive practitioner.

    ``max_age`` > 0 accepts a copy that old (a display next to availability, which reads the
    schedule with the same allowance); 0 reads the current state.
    """
    with uow:
        practitioner = uow.practitioners.get(practitioner_id, max_age=max_age)
    if practitioner is None or not practitioner.active:
        raise PractitionerNotFound(f"no practitioner with id {practitioner_id}")
    return practitioner
