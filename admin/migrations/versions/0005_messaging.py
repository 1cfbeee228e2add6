"""messages, commands and one delivery row per target machine

Revision ID: 0005_messaging
Revises: 0002
Create Date: 2026-11-30 05:05:17
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005_messaging"
down_revision = "0002"
branch_labels = None
depends_on = None


def _item_columns() -> list[sa.Column]:
    """What a message and a command share: owner, times, author, targets."""
    return [
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("target_all", sa.Boolean(), nullable=False),
        sa.Column("targets", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "message",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        *_item_columns(),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_message_org_created", "message", ["org_id", "created"])
    op.create_table(
        "command",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("timeout", sa.Integer(), nullable=False),
        *_item_columns(),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_command_org_created", "command", ["org_id", "created"])
    op.create_table(
        "delivery",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("command_id", sa.String(length=32), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("output_cut", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["command_id"], ["command.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delivery_command_id", "delivery", ["command_id"])
    op.create_index("ix_delivery_message_id", "delivery", ["message_id"])
    op.create_index("ix_delivery_org_machine_state", "delivery", ["org_id", "machine_id", "state"])
    op.create_index("ix_delivery_state_expires", "delivery", ["state", "expires"])


def downgrade() -> None:
    op.drop_table("delivery")  # its indexes go with it
    op.drop_table("command")
    op.drop_table("message")
