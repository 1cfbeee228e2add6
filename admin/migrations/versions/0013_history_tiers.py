"""history tiers: 5-minute and hourly buckets (min, max, mean, count) and the rollup's position

Revision ID: 0013_history_tiers
Revises: 0007_operations
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013_history_tiers"
down_revision = "0007_operations"
branch_labels = None
depends_on = None

METRICS = ("cpu", "ram", "disk", "score")


def upgrade() -> None:
    columns = []
    for metric in METRICS:
        columns += [
            sa.Column(f"{metric}_min", sa.Float(), nullable=True),
            sa.Column(f"{metric}_max", sa.Float(), nullable=True),
            sa.Column(f"{metric}_avg", sa.Float(), nullable=True),
            sa.Column(f"{metric}_count", sa.Integer(), nullable=False),
        ]
    op.create_table(
        "history_bucket",
        sa.Column("org_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("machine_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("width", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("org_id", "machine_id", "width", "ts"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_history_bucket_width_ts", "history_bucket", ["width", "ts"], unique=False)
    op.create_table(
        "history_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("done_id", sa.BigInteger(), nullable=False),
        sa.Column("seen_id", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Samples stored before this version are rolled up by the first run (done_id 0).
    op.execute("INSERT INTO history_rollup (id, done_id, seen_id, seen_at) VALUES (1, 0, 0, 0)")


def downgrade() -> None:
    op.drop_table("history_rollup")
    op.drop_index("ix_history_bucket_width_ts", table_name="history_bucket")
    op.drop_table("history_bucket")
