"""What the engine does around each statement and each checkout, to spare round trips.

``begin_at_first_write(engine)``: the engine's connections are in autocommit, and a unit of
work's transaction begins (``BEGIN``, on the same connection) just before its first statement
that is not a plain read: an INSERT, an UPDATE, a locking SELECT, ``pg_notify``, a SAVEPOINT...
Under READ COMMITTED every statement reads its own snapshot whether or not a transaction is
open, so the reads before it see what they would have seen inside one; a unit that only reads
(availability, a page) then costs one round trip per query instead of BEGIN, query, ROLLBACK,
and ``Connection.commit``/``rollback`` send COMMIT or ROLLBACK only when a transaction is open.
A statement or a connection given ``execution_options(autocommit_each=True)`` never begins
one: such a statement commits on its own (a single INSERT needs no BEGIN and COMMIT around it).

``in_transaction(connection)`` then tells whether anything before a write would be lost by
rolling back: the repositories guard a write with a SAVEPOINT only then.

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
from psycopg.pq import TransactionStatus

AUTOCOMMIT_EACH = "autocommit_each"

# A SELECT that neither locks rows nor has a transactional side effect.
_PLAIN_READ = re.compile(
    r"\s*SELECT\b(?!.*\b(?:FOR\s+(?:UPDATE|SHARE|NO\s+KEY|KEY)|pg_notify|nextval|setval"
    r"|pg_advisory\w*)\b)",
    re.IGNORECASE | re.DOTALL,
)
_IDLE = TransactionStatus.IDLE


def is_plain_read(statement: str) -> bool:
    return _PLAIN_READ.match(statement) is not None


def in_transaction(connection: sa.Connection) -> bool:
    """Whether the connection has a transaction open: it has run something but plain reads."""
    driver = connection.connection.driver_connection
    return driver is None or driver.info.transaction_status != _IDLE


def begin_at_first_write(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "before_cursor_execute")
    def _executing(
        connection: sa.Connection,
        cursor: Any,
        statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        if (
            cursor.connection.info.transaction_status == _IDLE
            and not is_plain_read(statement)
            and not _options(connection, context).get(AUTOCOMMIT_EACH, False)
        ):
            cursor.execute("BEGIN", prepare=False)


def _options(connection: sa.Connection, context: Any) -> Any:
    """The statement's execution options (its own, its connection's, its engine's)."""
    return connection.get_execution_options() if context is None else context.execution_options


def server_went_away(dbapi_connection: Any) -> bool:
    """Whether an idle pooled psycopg connection is unusable: closed, or its socket readable."""
    if getattr(dbapi_connection, "closed", True) or getattr(dbapi_connection, "broken", False):
        return True
    try:
        readable, _, _ = select.select([dbapi_connection.pgconn.socket], [], [], 0)
    except Exception:  # psycopg raises on a dead pgconn; OSError, ValueError on a closed fd
        return True
    return bool(readable)


def check_on_checkout(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if server_went_away(dbapi_connection):
            # The pool discards this connection and hands out a new one (SQLAlchemy's
            # documented "pessimistic" disconnect handling).
            raise sa.exc.DisconnectionError("the pooled connection's server went away")
