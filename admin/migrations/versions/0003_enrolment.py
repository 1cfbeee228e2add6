"""enrolment: machine-bound keys, and organisation settings that bound what keys may do

api_key: bound_machine_id and bound_hardware_id (an enrolled machine's own key speaks only for its
machine id), with a partial unique index: one live key per machine. organization: require_enrolment
(refuse reports and heartbeats from unbound organisation keys) and machine_quota (None: the
server's DASHFLEET_MACHINE_QUOTA). Adding nullable or defaulted columns rewrites no rows.

Revision ID: 0003_enrolment
Revises: 0012_null_sensors
Create Date: 2026-11-30 05:20:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003_enrolment"
down_revision = "0012_null_sensors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bound_machine_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column("bound_hardware_id", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True))
    # At most one live key per enrolled machine; also finds it (enrol again, reset, delete).
    op.create_index(
        "uq_api_key_live_machine",
        "api_key",
        ["org_id", "bound_machine_id"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(sa.Column("require_enrolment", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("machine_quota", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("machine_quota")
        batch_op.drop_column("require_enrolment")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index("uq_api_key_live_machine")
        batch_op.drop_column("bound_hardware_id")
        batch_op.drop_column("bound_machine_id")
