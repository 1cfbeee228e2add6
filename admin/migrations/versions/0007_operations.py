"""audit log: one row per change, chained by hash; updates refused by a trigger

Revision ID: 0007_operations
Revises: 0004_web_sessions
Create Date: 2026-11-30 06:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007_operations"
down_revision = "0004_web_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_entry_org_id_id", "audit_entry", ["org_id", "id"], unique=False)
    op.create_index("ix_audit_entry_at", "audit_entry", ["at"], unique=False)
    # Append-only: no code path updates an entry, and the database refuses it too.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_entry_refuse_update() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit entries are append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_entry "
            "FOR EACH ROW EXECUTE FUNCTION audit_entry_refuse_update()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_entry "
            "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END"
        )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS audit_entry_append_only"
        + (" ON audit_entry" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_entry_refuse_update()")
    op.drop_index("ix_audit_entry_at", table_name="audit_entry")
    op.drop_index("ix_audit_entry_org_id_id", table_name="audit_entry")
    op.drop_table("audit_entry")
