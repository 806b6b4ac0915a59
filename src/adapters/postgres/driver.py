"""Core statements sent straight through psycopg: the writes that commit on their own.

A booking request writes twice (the hold, then the checkout noted on it), each time one
statement that commits itself (the engine's connections are in autocommit). Through
``Connection.execute`` each cost SQLAlchemy an execution context, a result object and its
events, about as much CPU as the statement's round trip. ``DriverStatement`` compiles its
statement once per set of parameter names, for the engine's dialect, and sends it prepared on
the unit's own pooled connection, through the same psycopg connection (so the same deadline,
database.DeadlineConnection) and with the same values (each column type's bind processing).

Only for a statement that runs outside a transaction: it bypasses begin_at_first_write, which
would open one. A psycopg error comes back as the SQLAlchemy exception ``Connection.execute``
would raise (IntegrityError, OperationalError... parameters hidden), so errors.translate and the
deadlock retry see the same; a connection it breaks is invalidated, as SQLAlchemy would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler


class _Prepared:
    def __init__(self, statement: sa.ClauseElement, dialect: sa.Dialect, keys: list[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        assert isinstance(compiled, SQLCompiler)
        self.compiled = compiled
        self.sql = self.compiled.string
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in self.compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def parameters(self, values: Mapping[str, Any]) -> dict[str, Any]:
        parameters = dict(self.compiled.construct_params(values) or {})
        for name, processor in self.processors.items():
            if name in parameters:
                parameters[name] = processor(parameters[name])
        return parameters


class DriverStatement:
    """``statement`` (``.core``), sent through psycopg by ``send`` outside a transaction."""

    def __init__(self, statement: sa.UpdateBase) -> None:
        self.core = statement
        self._prepared: dict[tuple[str, ...], _Prepared] = {}

    def _for(self, dialect: sa.Dialect, values: Mapping[str, Any]) -> _Prepared:
        keys = tuple(values)
        prepared = self._prepared.get(keys)
        if prepared is None:
            # A race compiles twice, the same text: either copy will do.
            prepared = self._prepared[keys] = _Prepared(self.core, dialect, list(keys))
        return prepared

    def send(self, connection: sa.Connection, values: Mapping[str, Any]) -> psycopg.Cursor[Any]:
        """Run the statement on ``connection``'s psycopg connection; the cursor holds what it
        returned (``rowcount``, ``fetchone``)."""
        prepared = self._for(connection.dialect, values)
        parameters = prepared.parameters(values)
        driver = connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        try:
            return driver.execute(prepared.sql, parameters, prepare=True)
        except psycopg.Error as exc:
            broken = driver.broken or driver.closed
            if broken:
                connection.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                prepared.sql,
                parameters,
                exc,
                psycopg.Error,
                hide_parameters=True,
                connection_invalidated=broken,
                dialect=connection.dialect,
            ) from exc
