"""A PostgreSQL database: URL handling, the engine and its pool, the unit-of-work factory."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from adapters.postgres.errors import DatabaseConfigError, translated
from adapters.postgres.repositories import PractitionerCache
from adapters.postgres.uow import SqlAlchemyUnitOfWork

DRIVER = "postgresql+psycopg"
_ACCEPTED = {"postgres", "postgresql", "postgresql+psycopg"}


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
        self._practitioners = PractitionerCache()

    @classmethod
    def connect(
        cls,
        url: str | URL,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 10.0,
        connect_timeout: int = 5,
        **engine_options: Any,
    ) -> Database:
        """Configure the engine (no connection is made until first use).

        ``pool_pre_ping`` tests a pooled connection before handing it out, so a database restart
        costs no failed request. ``connect_timeout`` (seconds) keeps an unreachable host from
        hanging a request or a command; a ``connect_timeout`` in the URL wins.
        """
        parsed = normalize_url(url)
        connect_args: dict[str, Any] = {"application_name": "practitioner-booking"}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = connect_timeout
        connect_args.update(engine_options.pop("connect_args", {}))
        with translated(describe_url(parsed)):
            engine = sa.create_engine(
                parsed,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                pool_pre_ping=True,
                connect_args=connect_args,
                **engine_options,
            )
        return cls(engine)

    def unit_of_work(self) -> SqlAlchemyUnitOfWork:
        """A fresh unit of work (booking_core.ports.UnitOfWorkFactory)."""
        return SqlAlchemyUnitOfWork(
            self._sessions, where=self._description, practitioner_cache=self._practitioners
        )

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers a trivial query."""
        with translated(self._description), self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def describe(self) -> str:
        return self._description

    @property
    def url(self) -> URL:
        """The URL the engine uses (render it with ``hide_password=False`` only for a driver)."""
        return self.engine.url

    def dispose(self) -> None:
        """Close the pooled connections; the Database may not be used afterwards."""
        with translated(self._description):
            self.engine.dispose()
