"""install links: a URL that installs the agent and enrols it with a key of its own

Revision ID: 0008_install_links
Revises: 0005_messaging
Create Date: 2026-11-30 05:20:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_install_links"
down_revision = "0005_messaging"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "install_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("enroll_key_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("uses_allowed", sa.Integer(), nullable=False),
        sa.Column("uses_count", sa.Integer(), nullable=False),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["enroll_key_id"], ["api_key.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("install_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_install_link_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("install_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_install_link_org_id"))
    op.drop_table("install_link")
