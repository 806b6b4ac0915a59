"""A PostgreSQL database: URL handling, the engine and its pool, the unit-of-work factory."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg.abc import PQGen
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from adapters.postgres.database_events import begin_at_first_write, check_on_checkout
from adapters.postgres.errors import DatabaseConfigError, DatabaseUnavailable, translated
from adapters.postgres.practitioner_cache import PractitionerCache
from adapters.postgres.uow import SqlAlchemyUnitOfWork

DRIVER = "postgresql+psycopg"
_ACCEPTED = {"postgres", "postgresql", "postgresql+psycopg"}

RV = TypeVar("RV")

# psycopg raises this private OperationalError subclass when Connection.wait's timeout expires.
_WAIT_TIMEOUT: type[psycopg.OperationalError] = getattr(
    psycopg.errors, "_WaitTimeout", psycopg.OperationalError
)


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection that gives up on a server that does not answer.

    ``statement_timeout`` is enforced by the server, so a server that is frozen (SIGSTOP, a
    stalled disk, a VM pause) never sends the cancellation; the kernel keeps ACKing our packets,
    so TCP keepalives and ``tcp_user_timeout`` see nothing wrong either. Every wait on the socket
    (query, fetch, commit, rollback, the pool's pre-ping) therefore gets a client-side limit of
    ``wait_timeout`` seconds; when it passes the connection is closed (its state is unknown) and
    an OperationalError raised, which SQLAlchemy treats as a disconnect (the pool drops it).
    """

    wait_timeout: float = 6.0

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        limit = self.wait_timeout if timeout is None else min(timeout, self.wait_timeout)
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except _WAIT_TIMEOUT as exc:
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the server did not answer within {limit:g} s; connection closed"
            ) from exc


def _server_options(existing: str, settings: dict[str, int]) -> str:
    """libpq ``options`` with ``-c name=value`` for each setting the URL does not set itself."""
    parts = [existing] if existing else []
    parts += [f"-c {name}={value}" for name, value in settings.items() if name not in existing]
    return " ".join(parts)


def normalize_url(url: str | URL) -> URL:
    """The SQLAlchemy URL for psycopg 3.

    Accepts ``postgresql+psycopg://``, ``postgresql://`` and ``postgres://`` (the form Heroku and
    many hosts hand out). Raises DatabaseConfigError for anything else; the message never
    repeats the URL, which may hold a password.
    """
    if isinstance(url, str):
        text = url.strip()
        if text.startswith("postgres://"):
            text = "postgresql://" + text[len("postgres://") :]
        try:
            parsed = make_url(text)
        except ArgumentError as exc:
            raise DatabaseConfigError(
                "the database URL is not valid; expected postgresql://user:password@host:port/db"
            ) from exc
    else:
        parsed = url
    if parsed.drivername not in _ACCEPTED:
        raise DatabaseConfigError(
            f"the database URL must start with postgresql:// (got {parsed.drivername}://)"
        )
    return parsed.set(drivername=DRIVER)


def describe_url(url: URL) -> str:
    """``PostgreSQL at host:port/db``: where it is, never who or with which password."""
    host = url.host or url.query.get("host") or "localhost"
    if isinstance(host, tuple):
        host = ",".join(host)
    port = url.port or 5432
    return f"PostgreSQL at {host}:{port}/{url.database or ''}"


class Database:
    """An engine with a connection pool, and the unit-of-work factory built on it.

    Build one per process with ``Database.connect`` (bootstrap does); share it between threads;
    give each request or job its own ``unit_of_work()``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._description = describe_url(engine.url)
        self._sessions = sessionmaker(
            bind=engine, class_=Session, autoflush=False, expire_on_commit=False
        )
        # A plain libpq URL for the cache's listening connection (no SQLAlchemy driver name).
        conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._practitioners = PractitionerCache(conninfo)
        self._ping_lock = threading.Lock()
        self._ping: Future[None] | None = None

    @classmethod
    def connect(
        cls,
        url: str | URL,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 5.0,
        connect_timeout: int = 3,
        statement_timeout_ms: int = 5000,
        idle_in_transaction_timeout_ms: int = 30000,
        **engine_options: Any,
    ) -> Database:
        """Configure the engine (no connection is made until first use); every call has a deadline.

        - ``connect_timeout`` (seconds, at least 2 as in libpq) bounds connecting; a
          ``connect_timeout`` in the URL wins.
        - ``pool_timeout`` (seconds) bounds the wait for a free pooled connection.
        - ``statement_timeout_ms`` is the server's ``statement_timeout``; each wait on the server
          is also limited on our side to that plus one second (DeadlineConnection), so a frozen
          server costs a request at most that long, then DatabaseUnavailable.
        - ``idle_in_transaction_timeout_ms``: the server ends a session left idle inside a
          transaction (a process stuck or killed mid-transaction) so its row locks go.
        - TCP keepalives and ``tcp_user_timeout`` notice a peer that vanished (host down, network
          cut) on a connection that is idle or has unacknowledged data.

        A pooled connection is checked before it is handed out (database_events: its socket,
        no round trip), so a database restart costs no failed request. Options already in the
        URL win over these.
        """
        parsed = normalize_url(url)
        query = parsed.query
        connect_args: dict[str, Any] = {"application_name": "practitioner-booking"}
        transport = {
            "connect_timeout": max(int(connect_timeout), 2),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": 30000,  # ms: unacknowledged data for this long breaks the link
        }
        connect_args.update({k: v for k, v in transport.items() if k not in query})
        server = {
            "statement_timeout": statement_timeout_ms,
            "idle_in_transaction_session_timeout": idle_in_transaction_timeout_ms,
        }
        existing = query.get("options", "")
        connect_args["options"] = _server_options(
            existing if isinstance(existing, str) else " ".join(existing), server
        )
        parsed = parsed.difference_update_query(["options"])
        connect_args.update(engine_options.pop("connect_args", {}))
        wait_timeout = (statement_timeout_ms / 1000 if statement_timeout_ms > 0 else 30.0) + 1.0
        with translated(describe_url(parsed)):
            engine = sa.create_engine(
                parsed,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                pool_pre_ping=False,  # check_on_checkout does it without a round trip
                isolation_level="AUTOCOMMIT",  # begin_at_first_write opens the transactions
                connect_args=connect_args,
                **engine_options,
            )

        begin_at_first_write(engine)
        check_on_checkout(engine)

        @sa.event.listens_for(engine, "do_connect")
        def _connect(
            _dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
        ) -> DeadlineConnection:
            connection = DeadlineConnection.connect(*cargs, **cparams)
            connection.wait_timeout = wait_timeout
            return connection

        return cls(engine)

    def unit_of_work(self) -> SqlAlchemyUnitOfWork:
        """A fresh unit of work (booking_core.ports.UnitOfWorkFactory)."""
        return SqlAlchemyUnitOfWork(
            self._sessions,
            engine=self.engine,
            where=self._description,
            practitioner_cache=self._practitioners,
        )

    def ping(self, timeout: float = 1.5) -> None:
        """Raise DatabaseUnavailable unless the database answers a trivial query in ``timeout`` s.

        The query runs on a helper thread so the caller (``/readyz``) gets its answer in time
        whatever the pool, the connect or the server do; one probe runs at a time, and callers
        that come while it is still out wait on that same probe (a frozen server does not pile
        up threads). The helper itself ends within the connection deadlines.
        """
        with self._ping_lock:
            probe = self._ping
            if probe is None or probe.done():
                probe = self._ping = Future()
                threading.Thread(
                    target=self._probe, args=(probe,), name="database-ping", daemon=True
                ).start()
        try:
            probe.result(timeout=timeout)
        except FutureTimeout:
            raise DatabaseUnavailable(
                f"{self._description} did not answer within {timeout:g} s"
            ) from None

    def _probe(self, probe: Future[None]) -> None:
        try:
            with translated(self._description), self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except BaseException as exc:  # handed to the waiting caller
            probe.set_exception(exc)
        else:
            probe.set_result(None)

    def describe(self) -> str:
        return self._description

    @property
    def url(self) -> URL:
        """The URL the engine uses (render it with ``hide_password=False`` only for a driver)."""
        return self.engine.url

    def dispose(self) -> None:
        """Close the pooled connections; the Database may not be used afterwards."""
        self._practitioners.close()
        with translated(self._description):
            self.engine.dispose()
