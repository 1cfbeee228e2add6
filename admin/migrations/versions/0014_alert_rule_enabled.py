"""alert rule enabled: a rule can be turned off (and on again) without deleting it

Revision ID: 0014_alert_rule_enabled
Revises: 0013_history_tiers
Create Date: 2026-11-30 09:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_alert_rule_enabled"
down_revision = "0013_history_tiers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every existing rule stays on.
    with op.batch_alter_table("alert_rule") as batch_op:
        batch_op.add_column(sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("alert_rule") as batch_op:
        batch_op.drop_column("enabled")
