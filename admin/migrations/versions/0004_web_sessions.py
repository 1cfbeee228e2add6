"""web sessions in the database, a per-user session secret, sign-in failures, e-mails unique per organisation

Sessions move out of each process's NiceGUI storage into `web_session`, so sign-out and removal
apply on every server process; each user gets a `session_secret` that every session must match
(a user made later with a removed user's id never inherits its sessions); `login_failure` holds
the growing sign-in delays; an e-mail is unique within its organisation only (docs/security.md).

Revision ID: 0004_web_sessions
Revises: 0003_enrolment
Create Date: 2026-11-30 05:50:00
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004_web_sessions"
down_revision = "0003_enrolment"
branch_labels = None
depends_on = None

# 0001 made `UNIQUE (email)` without a name: on SQLite the batch copy names it by this convention.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("user_account", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("session_secret", sa.String(length=64), nullable=False, server_default=""))
        batch.drop_constraint(
            "user_account_email_key" if bind.dialect.name == "postgresql" else "uq_user_account_email", type_="unique"
        )
        batch.create_unique_constraint("uq_user_account_org_email", ["org_id", "email"])
        batch.create_index("ix_user_account_email", ["email"], unique=False)
    # Each existing user gets a secret of its own (the server default only fills the column).
    users = sa.table("user_account", sa.column("id", sa.Integer), sa.column("session_secret", sa.String))
    for (user_id,) in bind.execute(sa.select(users.c.id)).all():
        bind.execute(users.update().where(users.c.id == user_id).values(session_secret=secrets.token_urlsafe(24)))
    with op.batch_alter_table("user_account") as batch:
        batch.alter_column("session_secret", server_default=None)

    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("handoff_hash", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("user_secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("handoff_hash"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_web_session_user_id", "web_session", ["user_id"], unique=False)
    op.create_index("ix_web_session_expires_at", "web_session", ["expires_at"], unique=False)
    op.create_table(
        "login_failure",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_login_failure_updated_at", "login_failure", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_table("login_failure")
    op.drop_table("web_session")
    with op.batch_alter_table("user_account") as batch:
        batch.drop_index("ix_user_account_email")
        batch.drop_constraint("uq_user_account_org_email", type_="unique")
        batch.create_unique_constraint("uq_user_account_email", ["email"])
        batch.drop_column("session_secret")
