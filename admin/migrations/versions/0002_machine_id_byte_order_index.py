"""machine ids in byte order on PostgreSQL: the unique index built with the "C" collation

The fleet is listed by machine id in byte order (SQLite's own order; `ORDER BY machine_id COLLATE
"C"` on PostgreSQL, so that pages agree between the two). PostgreSQL's unique constraint used the
database's locale collation and could not serve that order: every listing sorted the whole
organisation (7 ms of a 10,000-machine listing's query against 0.05 ms). Uniqueness is the same
under either collation, and the upserts' ON CONFLICT (org_id, machine_id) infers this index.
SQLite: nothing to do.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:55:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # One transaction: writers wait on the table's lock; none sees the table without uniqueness.
    # The index builds in well under a second per 100,000 machines; a session left idle in a
    # transaction on the table fails the migration after 10 s rather than stall every writer.
    op.execute("SET LOCAL lock_timeout = '10s'")
    op.drop_constraint("uq_machine_org_machine_id", "machine", type_="unique")
    op.execute('CREATE UNIQUE INDEX uq_machine_org_machine_id ON machine (org_id, machine_id COLLATE "C")')
    op.execute("SET LOCAL lock_timeout = DEFAULT")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("uq_machine_org_machine_id", table_name="machine")
    op.create_unique_constraint("uq_machine_org_machine_id", "machine", ["org_id", "machine_id"])
