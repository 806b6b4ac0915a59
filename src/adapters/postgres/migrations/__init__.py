"""Alembic migrations of the booking schema; shipped in the package so they run when installed.

Run them with ``booking db upgrade`` (or ``adapters.postgres.migrate.upgrade(url)``). New
revisions go in ``versions/`` with a four-digit id; review every generated line by hand
(autogenerate cannot see the exclusion constraint on bookings).
"""
