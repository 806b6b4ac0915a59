"""What the engine notes about each connection: whether its transaction has written, and
whether a pooled connection is still usable, without a round trip for either.

``note_writes(engine)`` marks a transaction as written at its first statement that is not a
plain read (an INSERT, an UPDATE, a locking SELECT, ``pg_notify``...): the repositories then
guard a write with a SAVEPOINT only when there is something before it to keep.
``check_on_checkout(engine)`` replaces SQLAlchemy's ``pool_pre_ping`` (a ``SELECT 1`` round
trip on every checkout): a pooled connection whose server went away (restart, shutdown, a
killed backend) has its socket readable (end of file, or the server's termination message),
since an idle connection of ours expects nothing from the server; such a connection is
dropped and another one made, before the request uses it.
"""

from __future__ import annotations

import re
import select
from typing import Any

import sqlalchemy as sa

_WROTE = "booking_wrote"

# A SELECT that neither locks rows nor has a transactional side effect.
_PLAIN_READ = re.compile(
    r"\s*SELECT\b(?!.*\b(?:FOR\s+(?:UPDATE|SHARE|NO\s+KEY|KEY)|pg_notify|nextval|setval"
    r"|pg_advisory\w*)\b)",
    re.IGNORECASE | re.DOTALL,
)


def is_plain_read(statement: str) -> bool:
    return _PLAIN_READ.match(statement) is not None


def wrote_in_transaction(connection: sa.Connection) -> bool:
    """Whether the connection's current transaction has run anything but plain reads (True
    when unknown: a connection whose transaction began outside these events)."""
    return bool(connection.info.get(_WROTE, True))


def note_writes(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "begin")
    def _begun(connection: sa.Connection) -> None:
        connection.info[_WROTE] = False

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _executing(connection: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if not connection.info.get(_WROTE, True) and not is_plain_read(statement):
            connection.info[_WROTE] = True


def server_went_away(dbapi_connection: Any) -> bool:
    """Whether an idle pooled psycopg connection is unusable: closed, or its socket readable."""
    if getattr(dbapi_connection, "closed", True) or getattr(dbapi_connection, "broken", False):
        return True
    try:
        readable, _, _ = select.select([dbapi_connection.pgconn.socket], [], [], 0)
    except (OSError, ValueError, AttributeError, Exception):  # psycopg raises on a dead pgconn
        return True
    return bool(readable)


def check_on_checkout(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if server_went_away(dbapi_connection):
            # The pool discards this connection and hands out a new one (SQLAlchemy's
            # documented "pessimistic" disconnect handling).
            raise sa.exc.DisconnectionError("the pooled connection's server went away")
