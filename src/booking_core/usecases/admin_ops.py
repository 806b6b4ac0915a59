"""Admin-only use cases: parked jobs, users and roles, the audit log, named API tokens.

Everyone but an admin (or the system) is refused with Forbidden; changes are audited in their
own transaction, as in ``usecases.admin``. Tokens are shown once and stored hashed; neither the
token nor its hash ever reaches the audit log.
"""

from __future__ import annotations

import hmac
import secrets

import attrs
from attrs import frozen

from booking_core.access import Actor, ApiToken, AuditEntry, AuditFilter
from booking_core.errors import NotFound, UserNotFound, ValidationFailed
from booking_core.jobs import Job, JobStatus
from booking_core.model import Role, User
from booking_core.policy import hash_token
from booking_core.ports import Clock, UnitOfWork
from booking_core.usecases.admin import record

API_TOKEN_PREFIX = "bkt_"  # noqa: S105 - a prefix, not a secret


class JobNotFound(NotFound):
    title = "Job not found"


class ApiTokenNotFound(NotFound):
    title = "Token not found"


# -- jobs -----------------------------------------------------------------------------------------


def _job_json(job: Job) -> dict[str, object]:
    return {
        "id": job.id,
        "kind": str(job.kind),
        "status": job.status.value,
        "attempts": job.attempts,
    }


def list_jobs(
    status: JobStatus | None, *, actor: Actor, uow: UnitOfWork, limit: int = 100
) -> list[Job]:
    """Outbox jobs (``JobStatus.PARKED``: the ones that need a person), by id. Admins only."""
    actor.require_admin()
    with uow:
        return uow.outbox.list(status, limit=limit)


def retry_job(
    job_id: int, *, actor: Actor, uow: UnitOfWork, clock: Clock, request_id: str | None = None
) -> Job:
    """Put a parked job back in the queue, due now, attempts from zero. Admins only.

    Raises JobNotFound when there is no parked job with that id.
    """
    actor.require_admin()
    now = clock.now()
    with uow:
        before = uow.outbox.get(job_id)
        job = uow.outbox.requeue(job_id, now)
        if before is None or job is None:
            raise JobNotFound(f"no parked job with id {job_id}")
        record(
            uow,
            actor=actor,
            at=now,
            action="job.retry",
            object_type="job",
            object_id=job_id,
            before=_job_json(before),
            after=_job_json(job),
            request_id=request_id,
        )
        uow.commit()
    return job


# -- users ----------------------------------------------------------------------------------------


def _user_json(user: User) -> dict[str, object]:
    return {"id": user.id, "role": user.role.value, "practitioner_id": user.practitioner_id}


def list_users(*, actor: Actor, uow: UnitOfWork) -> list[User]:
    """Users who signed in, by id. Admins only."""
    actor.require_admin()
    with uow:
        return uow.users.list()


def change_role(
    user_id: int,
    role: Role,
    practitioner_id: int | None = None,
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> User:
    """Give a user a role; ``practitioner`` needs the practitioner they manage, the other roles
    take none. Admins only. Raises UserNotFound, ValidationFailed (the practitioner missing,
    unknown, or given for another role)."""
    actor.require_admin()
    if role is Role.PRACTITIONER and practitioner_id is None:
        raise ValidationFailed(
            "a practitioner user needs a practitioner",
            errors={"practitioner_id": ["is required for the practitioner role"]},
        )
    if role is not Role.PRACTITIONER and practitioner_id is not None:
        raise ValidationFailed(
            "only practitioner users manage a practitioner",
            errors={"practitioner_id": ["must be absent unless role is practitioner"]},
        )
    with uow:
        before = uow.users.get(user_id)
        if before is None:
            raise UserNotFound(f"no user with id {user_id}")
        if practitioner_id is not None and uow.practitioners.get(practitioner_id) is None:
            raise ValidationFailed(
                f"no practitioner with id {practitioner_id}",
                errors={"practitioner_id": ["is not a practitioner"]},
            )
        user = uow.users.set_role(user_id, role, practitioner_id)
        record(
            uow,
            actor=actor,
            at=clock.now(),
            action="user.role",
            object_type="user",
            object_id=user_id,
            before=_user_json(before),
            after=_user_json(user),
            request_id=request_id,
        )
        uow.commit()
    return user


# -- audit ----------------------------------------------------------------------------------------


@frozen
class AuditPage:
    items: list[AuditEntry]
    next_before_id: int | None  # pass as ``before_id`` for the next (older) page; None: last


def list_audit(filters: AuditFilter, *, actor: Actor, uow: UnitOfWork) -> AuditPage:
    """Audit entries matching ``filters``, newest first. Admins only."""
    actor.require_admin()
    with uow:
        found = uow.audit.list(attrs.evolve(filters, limit=filters.limit + 1))
    items = found[: filters.limit]
    more = len(found) > filters.limit
    return AuditPage(items=items, next_before_id=items[-1].id if more and items else None)


# -- API tokens -----------------------------------------------------------------------------------


@frozen
class IssuedToken:
    """A new token: ``token`` is shown to the caller once and never stored."""

    token: str = attrs.field(repr=False)
    record: ApiToken


def issue_api_token(
    name: str,
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> IssuedToken:
    """A new named admin token (``bkt_...``). Admins (and the system: the CLI) only.

    Raises ValidationFailed for an empty name.
    """
    actor.require_admin()
    name = name.strip()
    if not name or len(name) > 120:
        raise ValidationFailed(
            "the token needs a name", errors={"name": ["must be 1 to 120 characters"]}
        )
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    with uow:
        stored = uow.api_tokens.add(
            ApiToken(
                name=name,
                token_hash=hash_token(token),
                created_at=now,
                created_by=f"{actor.type}:{actor.id}",
            )
        )
        record(
            uow,
            actor=actor,
            at=now,
            action="api_token.create",
            object_type="api_token",
            object_id=stored.id,
            before=None,
            after={"id": stored.id, "name": stored.name},
            request_id=request_id,
        )
        uow.commit()
    return IssuedToken(token=token, record=stored)


def list_api_tokens(*, actor: Actor, uow: UnitOfWork) -> list[ApiToken]:
    actor.require_admin()
    with uow:
        return uow.api_tokens.list()


def revoke_api_token(
    token_id: int,
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> ApiToken:
    """Revoke a token at once (its bearer is refused from the next request). Admins only.

    Raises ApiTokenNotFound.
    """
    actor.require_admin()
    now = clock.now()
    with uow:
        before = uow.api_tokens.get(token_id)
        token = uow.api_tokens.revoke(token_id, now)
        if before is None or token is None:
            raise ApiTokenNotFound(f"no token with id {token_id}")
        record(
            uow,
            actor=actor,
            at=now,
            action="api_token.revoke",
            object_type="api_token",
            object_id=token_id,
            before={"id": token_id, "name": before.name, "active": before.active},
            after={"id": token_id, "name": token.name, "active": token.active},
            request_id=request_id,
        )
        uow.commit()
    return token


def actor_for_bearer(token: str, *, admin_token: str | None, uow: UnitOfWork) -> Actor | None:
    """Who a bearer token is: ADMIN_API_TOKEN, or an active API token; None for anything else
    (a manage token, a revoked or unknown token)."""
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Actor.admin_token()
    if not token.startswith(API_TOKEN_PREFIX):
        return None
    with uow:
        found = uow.api_tokens.get_by_hash(hash_token(token))
    if found is None or not found.active:
        return None
    return Actor.api_token(found)
