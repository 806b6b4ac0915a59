"""Signing in: who a verified identity is in our users table, and who is an admin."""

from __future__ import annotations

from attrs import frozen

from booking_core.errors import UserNotFound, ValidationFailed
from booking_core.model import Role, User
from booking_core.ports import Clock, UnitOfWork


@frozen(kw_only=True)
class SignIn:
    """An identity the OpenID provider vouched for (its ID token was verified by the caller)."""

    open_id: str  # the provider's ``sub``
    name: str | None = None
    email: str | None = None  # only a verified address, or None


def sign_in(command: SignIn, *, uow: UnitOfWork, clock: Clock, owner_open_id: str | None) -> User:
    """Upsert the user by ``open_id`` (name, email, last_signed_in = now) and return it.

    The ``owner_open_id`` user is made an admin; anyone else keeps the role they had (``user`` on
    a first sign-in). Raises ValidationFailed for an empty ``open_id``.
    """
    open_id = command.open_id.strip()
    if not open_id:
        raise ValidationFailed("the identity has no subject", errors={"sub": ["is empty"]})
    owner = bool(owner_open_id) and open_id == owner_open_id
    candidate = User(
        open_id=open_id,
        name=command.name,
        email=command.email,
        role=Role.ADMIN if owner else Role.USER,
        last_signed_in=clock.now(),
    )
    with uow:
        user = uow.users.upsert(candidate)
        uow.commit()
    return user


def current_user(user_id: int, *, uow: UnitOfWork) -> User | None:
    """The user behind a session (None when the user no longer exists)."""
    with uow:
        return uow.users.get(user_id)


def promote_user(email: str, *, uow: UnitOfWork) -> User:
    """Make the user with ``email`` (ignoring case) an admin and return them.

    Raises UserNotFound when nobody signed in with that address, ValidationFailed when several
    users share it (the caller must then pick one by id).
    """
    wanted = email.strip()
    with uow:
        found = uow.users.find_by_email(wanted) if wanted else []
        if not found:
            raise UserNotFound(f"no user with the email {wanted!r} has signed in yet")
        if len(found) > 1:
            raise ValidationFailed(
                f"{len(found)} users have the email {wanted!r}",
                errors={"email": ["is shared by several users"]},
            )
        user = uow.users.set_role(_id(found[0]), Role.ADMIN, None)
        uow.commit()
    return user


def _id(user: User) -> int:
    if user.id is None:  # repositories return stored users, which have ids
        raise UserNotFound("the user has no id")
    return user.id
