from __future__ import annotations

import secrets
import time

from sqlalchemy import BigInteger, Column, Index, Integer, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

from common.constants import MACHINE_ID_MAX_LENGTH, SYSTEM_FIELD_MAX_LENGTH


def _now() -> float:
    return time.time()


class Organization(SQLModel, table=True):
    __tablename__ = "organization"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    created_at: float = Field(default_factory=_now)
    # Once its machines are enrolled: refuse reports and heartbeats sent with organisation
    # (unbound) `agent` keys, so only each machine's own key speaks for it.
    require_enrolment: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # At most this many machines; None: the server's DASHFLEET_MACHINE_QUOTA.
    machine_quota: int | None = None


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    # At most one live key per enrolled machine (two racing enrolments cannot both win), and the
    # index that finds a machine's key when it is enrolled again, reset or deleted. Unbound keys
    # (NULL machine id) are never equal, so organisation keys are not limited.
    __table_args__ = (
        Index(
            "uq_api_key_live_machine",
            "org_id",
            "bound_machine_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    # SHA-256 of the whole key: keys are long random strings, so a fast hash is the right one.
    key_hash: str = Field(max_length=64, unique=True)
    # The first characters, so people can tell their keys apart without the secret.
    prefix: str = Field(max_length=16)
    scopes: str = Field(max_length=100, description="space-separated scope names")
    created_at: float = Field(default_factory=_now)
    revoked_at: float | None = None
    # An enrolled machine's own key speaks only for this machine id (None: an organisation key).
    bound_machine_id: str | None = Field(default=None, max_length=MACHINE_ID_MAX_LENGTH)
    # The hardware that enrolled it: the same machine id from other hardware is a takeover (409).
    bound_hardware_id: str | None = Field(default=None, max_length=SYSTEM_FIELD_MAX_LENGTH)


def _session_secret() -> str:
    return secrets.token_urlsafe(24)


class User(SQLModel, table=True):
    __tablename__ = "user_account"
    # An e-mail is unique within its organisation only: a global uniqueness told an admin adding a
    # user that the address exists in another organisation (docs/security.md, finding 12).
    __table_args__ = (UniqueConstraint("org_id", "email", name="uq_user_account_org_email"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    email: str = Field(max_length=320, index=True, description="stored lower-case")
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=20, description="admin or viewer")
    created_at: float = Field(default_factory=_now)
    # Every web session carries a copy; changing it (password or role change, sign-out everywhere)
    # ends them all. A new user never inherits a removed one's sessions, even with its id.
    session_secret: str = Field(default_factory=_session_secret, max_length=64)


class Machine(SQLModel, table=True):
    """The latest state of one machine: one row, updated in place by one upsert per contact."""

    __tablename__ = "machine"
    __table_args__ = (
        # One row per machine of an organisation (the key of every upsert); on PostgreSQL an
        # index in byte order instead (below).
        UniqueConstraint("org_id", "machine_id", name="uq_machine_org_machine_id").ddl_if(dialect="sqlite"),
        Index("ix_machine_org_last_seen", "org_id", "last_seen"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    machine_id: str = Field(max_length=MACHINE_ID_MAX_LENGTH)
    hardware_id: str | None = Field(default=None, max_length=SYSTEM_FIELD_MAX_LENGTH)
    hostname: str | None = Field(default=None, max_length=SYSTEM_FIELD_MAX_LENGTH)
    os: str | None = Field(default=None, max_length=SYSTEM_FIELD_MAX_LENGTH)
    last_seen: float
    last_ping: float | None = None
    ts: float | None = Field(default=None, description="server time of the last report")
    report: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    system: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    # Copied out of the report so the UI can sort and count without parsing JSON.
    cpu_percent: float | None = None
    ram_percent: float | None = None
    disk_percent: float | None = None
    health_score: float | None = None
    health_status: str | None = Field(default=None, max_length=20)
    # A clean stop the agent announced (POST /api/agent/goodbye): away, not offline, while
    # goodbye_at >= last_seen (nothing heard since) and before expected_back, if it gave one.
    goodbye_at: float | None = None
    expected_back: float | None = None


# The fleet is listed by machine id in byte order, SQLite's own. PostgreSQL compares text by locale
# (ORDER BY machine_id COLLATE "C" there, repositories/machines.py), so its unique index is built
# in the "C" collation to serve that order; uniqueness is the same (migration 0002).
Index(
    "uq_machine_org_machine_id", Machine.__table__.c.org_id, Machine.__table__.c.machine_id.collate("C"), unique=True
).ddl_if(dialect="postgresql")


class Sample(SQLModel, table=True):
    """One history point per report, for the charts; deleted after the retention period."""

    __tablename__ = "sample"
    __table_args__ = (Index("ix_sample_org_machine_ts", "org_id", "machine_id", "ts"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    )
    org_id: int = Field(foreign_key="organization.id")
    machine_id: str = Field(max_length=MACHINE_ID_MAX_LENGTH)
    ts: float = Field(index=True)
    # null: the agent could not read that sensor (unknown, never 0)
    cpu_percent: float | None = None
    ram_percent: float | None = None
    disk_percent: float | None = None
    health_score: float | None = None


class ExpiredMachine(SQLModel, table=True):
    """A machine removed for silence, waiting to be named once in its org's next fleet listing."""

    __tablename__ = "expired_machine"

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    machine_id: str = Field(max_length=MACHINE_ID_MAX_LENGTH)
    expired_at: float
