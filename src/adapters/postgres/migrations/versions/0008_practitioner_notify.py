"""Every change to a practitioner's schedule announces itself, whoever makes it.

Per-process practitioner caches (adapters/postgres/practitioner_cache.py) drop their copy when
``NOTIFY practitioner_changed, '<id>'`` arrives. The service used to send it from the
repository's save, so a change made any other way (SQL by hand, a restore, a TRUNCATE, a future
code path) left every process serving the old schedule and price until the copy aged out.
Triggers on the practitioner's tables send it now, in the changing transaction: a row change
names its practitioner, a TRUNCATE sends ``'*'`` (drop every copy). PostgreSQL folds repeats of
one payload within a transaction, so an edit of twenty working-hour rows sends one.

Revision ID: 0008_practitioner_notify
Revises: 0007_scheduling_rules
Create Date: 2026-12-01

Written by hand; keep adapters/postgres/rows.py in step (tests/integration/test_migrations.py
compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_practitioner_notify"
down_revision: str | Sequence[str] | None = "0007_scheduling_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "practitioner_changed"  # practitioner_cache.CHANNEL when this was written
CHILDREN = ("services", "working_hours", "date_overrides", "time_off")


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION notify_practitioner_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_TABLE_NAME = 'practitioners' THEN
                IF TG_OP <> 'INSERT' THEN
                    PERFORM pg_notify('{CHANNEL}', OLD.id::text);
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    PERFORM pg_notify('{CHANNEL}', NEW.id::text);
                END IF;
            ELSE
                IF TG_OP <> 'INSERT' THEN
                    PERFORM pg_notify('{CHANNEL}', OLD.practitioner_id::text);
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    PERFORM pg_notify('{CHANNEL}', NEW.practitioner_id::text);
                END IF;
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION notify_practitioners_truncated() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '*');
            RETURN NULL;
        END $$
        """
    )
    for table in ("practitioners", *CHILDREN):
        op.execute(
            f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION notify_practitioner_changed()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_truncated AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION notify_practitioners_truncated()"
        )


def downgrade() -> None:
    for table in ("practitioners", *CHILDREN):
        op.execute(f"DROP TRIGGER {table}_truncated ON {table}")
        op.execute(f"DROP TRIGGER {table}_changed ON {table}")
    op.execute("DROP FUNCTION notify_practitioners_truncated()")
    op.execute("DROP FUNCTION notify_practitioner_changed()")
