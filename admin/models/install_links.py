"""Install links: a URL an admin pastes on a workstation to install and enrol the agent."""

from __future__ import annotations

import time

from sqlmodel import Field, SQLModel


def _now() -> float:
    return time.time()


class InstallLink(SQLModel, table=True):
    __tablename__ = "install_link"

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    # SHA-256 of the link's code (the secret part of its URL); the code itself is shown once.
    code_hash: str = Field(max_length=64, unique=True)
    # The enrol key (scope enroll) made for this link, revoked with it.
    enroll_key_id: int = Field(foreign_key="api_key.id")
    created_by: str = Field(max_length=320, description="who made it: an e-mail, or 'cli'")
    created_at: float = Field(default_factory=_now)
    expires_at: float
    uses_allowed: int
    uses_count: int = 0
    last_used_at: float | None = None
    revoked_at: float | None = None
