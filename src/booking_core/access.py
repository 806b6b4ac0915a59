"""Who is asking (an ``Actor``), what they may touch, and the records kept of what they changed.

The use cases take an Actor and decide here: an admin manages everything; a practitioner only
their own practitioner's profile, services, hours, time off and bookings (anything else is
"not found", so ids of others tell nothing); a client holding a manage token only that booking;
the system (the worker, the CLI) acts as itself. Admin-only actions refuse everyone else with
Forbidden. Audit entries and API tokens are values here too; neither ever holds a secret.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import field, frozen

from booking_core.errors import Forbidden, NotFound, ValidationFailed
from booking_core.model import Role, User


class ActorKind(enum.StrEnum):
    ADMIN = "admin"
    PRACTITIONER = "practitioner"
    USER = "user"  # signed in, no admin access
    CLIENT = "client"  # holds one booking's manage token
    SYSTEM = "system"  # the worker or a command run by the operator


@frozen(kw_only=True)
class Actor:
    """Someone acting through a use case.

    ``type`` and ``id`` name them in the audit log: a signed-in ``user`` (their user id), a
    bearer ``token`` (``admin-token`` for ADMIN_API_TOKEN, else the API token's id), a
    ``client`` (the booking id) or ``system``.
    """

    kind: ActorKind
    type: str
    id: str
    name: str = ""
    practitioner_id: int | None = None
    booking_id: int | None = None

    @classmethod
    def admin_token(cls) -> Actor:
        """The holder of ADMIN_API_TOKEN."""
        return cls(kind=ActorKind.ADMIN, type="token", id="admin-token", name="ADMIN_API_TOKEN")

    @classmethod
    def api_token(cls, token: ApiToken) -> Actor:
        """The holder of a named API token an admin issued (it acts as an admin)."""
        return cls(kind=ActorKind.ADMIN, type="token", id=str(token.id), name=token.name)

    @classmethod
    def for_user(cls, user: User) -> Actor:
        """A signed-in user, by role (a practitioner user without a practitioner has no access)."""
        kind = {
            Role.ADMIN: ActorKind.ADMIN,
            Role.PRACTITIONER: ActorKind.PRACTITIONER,
            Role.USER: ActorKind.USER,
        }[user.role]
        if kind is ActorKind.PRACTITIONER and user.practitioner_id is None:
            kind = ActorKind.USER
        return cls(
            kind=kind,
            type="user",
            id=str(user.id),
            name=user.name or "",
            practitioner_id=user.practitioner_id if kind is ActorKind.PRACTITIONER else None,
        )

    @classmethod
    def client(cls, booking_id: int) -> Actor:
        return cls(kind=ActorKind.CLIENT, type="client", id=str(booking_id), booking_id=booking_id)

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(kind=ActorKind.SYSTEM, type="system", id=name, name=name)

    @property
    def is_admin(self) -> bool:
        return self.kind in (ActorKind.ADMIN, ActorKind.SYSTEM)

    @property
    def is_staff(self) -> bool:
        """An admin, or a practitioner: someone the admin API answers at all."""
        return self.is_admin or self.kind is ActorKind.PRACTITIONER

    def require_admin(self) -> None:
        """Raises Forbidden unless an admin (or the system) acts."""
        if not self.is_admin:
            raise Forbidden("this needs an admin")

    def require_staff(self) -> None:
        """Raises Forbidden unless an admin or a practitioner acts."""
        if not self.is_staff:
            raise Forbidden("this needs an admin or a practitioner")

    def may_manage(self, practitioner_id: int) -> bool:
        return self.is_admin or (
            self.kind is ActorKind.PRACTITIONER and self.practitioner_id == practitioner_id
        )

    def require_practitioner(self, practitioner_id: int, not_found: NotFound) -> None:
        """Raises Forbidden for a non-staff actor, ``not_found`` for a practitioner asking about
        another practitioner's object (the same answer as for an id that does not exist)."""
        self.require_staff()
        if not self.may_manage(practitioner_id):
            raise not_found

    def audit_json(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id, "name": self.name}


def _jsonable(_inst: object, _attribute: object, value: Mapping[str, Any] | None) -> None:
    if value is not None:
        json.dumps(value)  # raises TypeError for what the log could not store


@frozen(kw_only=True)
class AuditEntry:
    """One change, recorded in the transaction that made it."""

    id: int | None = None
    at: datetime
    actor_type: str
    actor_id: str
    actor_name: str = ""
    action: str  # e.g. "practitioner.create", "booking.cancel"
    object_type: str
    object_id: str
    before: Mapping[str, Any] | None = field(default=None, validator=_jsonable)
    after: Mapping[str, Any] | None = field(default=None, validator=_jsonable)
    request_id: str | None = None


@frozen
class AuditFilter:
    """Filters for the audit list; None means any. Newest first, ``before_id`` pages on."""

    actor: str | None = None  # "type:id" or just the id
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    before_id: int | None = None
    limit: int = 50


@frozen(kw_only=True)
class ApiToken:
    """A named bearer token an admin issued; only its hash is stored, the token is shown once."""

    id: int | None = None
    name: str
    token_hash: str = field(repr=False)
    created_at: datetime
    created_by: str = ""
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


# -- opaque cursors ------------------------------------------------------------------------------


def encode_cursor(values: Mapping[str, Any]) -> str:
    """An opaque page cursor (URL-safe base64 of compact JSON)."""
    raw = json.dumps(dict(values), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The values of a cursor made by ``encode_cursor`` with exactly ``keys``.

    Raises ValidationFailed naming ``cursor`` for anything else.
    """
    bad = ValidationFailed("the cursor is not valid", errors={"cursor": ["is not a valid cursor"]})
    if not cursor or len(cursor) > 512:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad from exc
    if not isinstance(data, dict) or set(data) != set(keys):
        raise bad
    return data
