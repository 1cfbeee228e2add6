"""alerts: rules, channels, silences, state per rule and machine, events and the outbox;
a machine's announced absence (goodbye_at, expected_back)

Revision ID: 0006_alerts
Revises: 0008_install_links
Create Date: 2026-11-30 05:05:30.195414
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006_alerts"
down_revision = "0008_install_links"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_channel", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_channel_org_id"), ["org_id"], unique=False)

    op.create_table(
        "alert_event",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("machine_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_event", schema=None) as batch_op:
        batch_op.create_index("ix_alert_event_org_at", ["org_id", "at"], unique=False)

    op.create_table(
        "alert_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("clear_below", sa.Float(), nullable=True),
        sa.Column("for_seconds", sa.Integer(), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("machine_ids", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_rule", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_rule_org_id"), ["org_id"], unique=False)

    op.create_table(
        "alert_silence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("machine_ids", sa.Text(), nullable=True),
        sa.Column("starts", sa.Float(), nullable=False),
        sa.Column("ends", sa.Float(), nullable=False),
        sa.Column("weekly", sa.Boolean(), nullable=False),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_silence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_silence_org_id"), ["org_id"], unique=False)

    op.create_table(
        "alert_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["alert_channel.id"],
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["alert_event.id"],
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_delivery_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_delivery_event_id"), ["event_id"], unique=False)
        batch_op.create_index("ix_alert_delivery_state_due", ["state", "due_at"], unique=False)

    op.create_table(
        "alert_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("acked_until", sa.Float(), nullable=True),
        sa.Column("acked_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rule.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule_id", "machine_id", name="uq_alert_state_rule_machine"),
    )
    with op.batch_alter_table("alert_state", schema=None) as batch_op:
        batch_op.create_index("ix_alert_state_org_state", ["org_id", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_state_rule_id"), ["rule_id"], unique=False)

    with op.batch_alter_table("machine", schema=None) as batch_op:
        batch_op.add_column(sa.Column("goodbye_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("expected_back", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("machine", schema=None) as batch_op:
        batch_op.drop_column("expected_back")
        batch_op.drop_column("goodbye_at")

    with op.batch_alter_table("alert_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_state_rule_id"))
        batch_op.drop_index("ix_alert_state_org_state")

    op.drop_table("alert_state")
    with op.batch_alter_table("alert_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_delivery_state_due")
        batch_op.drop_index(batch_op.f("ix_alert_delivery_event_id"))
        batch_op.drop_index(batch_op.f("ix_alert_delivery_channel_id"))

    op.drop_table("alert_delivery")
    with op.batch_alter_table("alert_silence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_silence_org_id"))

    op.drop_table("alert_silence")
    with op.batch_alter_table("alert_rule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_rule_org_id"))

    op.drop_table("alert_rule")
    with op.batch_alter_table("alert_event", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_event_org_at")

    op.drop_table("alert_event")
    with op.batch_alter_table("alert_channel", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_channel_org_id"))

    op.drop_table("alert_channel")
