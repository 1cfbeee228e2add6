"""null sensors: a history sample's CPU, RAM or disk may be null (the agent could not read it)

Revision ID: 0012_null_sensors
Revises: 0006_alerts
Create Date: 2026-11-30 06:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_null_sensors"
down_revision = "0006_alerts"
branch_labels = None
depends_on = None

SENSORS = ("cpu_percent", "ram_percent", "disk_percent")


def upgrade() -> None:
    # SQLite cannot alter a column: batch mode copies the table (once, at this upgrade).
    with op.batch_alter_table("sample") as batch_op:
        for column in SENSORS:
            batch_op.alter_column(column, existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    # An unknown reading has no number to go back to: those samples are dropped.
    op.execute("DELETE FROM sample WHERE cpu_percent IS NULL OR ram_percent IS NULL OR disk_percent IS NULL")
    with op.batch_alter_table("sample") as batch_op:
        for column in SENSORS:
            batch_op.alter_column(column, existing_type=sa.Float(), nullable=False)
