"""Users get the practitioner role and the practitioner they manage (role ``practitioner``).

Revision ID: 0002_users_roles
Revises: 0001
Create Date: 2026-12-01

Written by hand; keep adapters/postgres/rows.py in step (tests/integration/test_migrations.py
compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_users_roles"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # PostgreSQL allows ADD VALUE inside a transaction but not using the new label in the same
    # transaction ("unsafe use of new value"), so the check below compares the role as text.
    op.execute("ALTER TYPE user_role ADD VALUE IF NOT EXISTS 'practitioner' BEFORE 'admin'")
    op.add_column("users", sa.Column("practitioner_id", sa.BigInteger))
    op.create_foreign_key(
        op.f("fk_users_practitioner_id_practitioners"),
        "users",
        "practitioners",
        ["practitioner_id"],
        ["id"],
    )
    op.create_check_constraint(
        op.f("ck_users_practitioner_linked"),
        "users",
        "role::text <> 'practitioner' OR practitioner_id IS NOT NULL",
    )
    op.create_index(op.f("ix_users_practitioner_id"), "users", ["practitioner_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_users_practitioner_id"), table_name="users")
    op.drop_constraint(op.f("ck_users_practitioner_linked"), "users", type_="check")
    op.drop_constraint(op.f("fk_users_practitioner_id_practitioners"), "users", type_="foreignkey")
    op.drop_column("users", "practitioner_id")
    # An enum label cannot be dropped: rebuild the type without it (practitioners become users).
    op.execute("ALTER TABLE users ALTER COLUMN role DROP DEFAULT")
    op.execute("ALTER TYPE user_role RENAME TO user_role_0002")
    op.execute("CREATE TYPE user_role AS ENUM ('user', 'admin')")
    op.execute(
        "ALTER TABLE users ALTER COLUMN role TYPE user_role USING "
        "(CASE WHEN role::text = 'practitioner' THEN 'user' ELSE role::text END)::user_role"
    )
    op.execute("ALTER TABLE users ALTER COLUMN role SET DEFAULT 'user'")
    op.execute("DROP TYPE user_role_0002")
