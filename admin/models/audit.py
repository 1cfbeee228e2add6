"""The audit log: one row per change, chained by hash, never updated (see services/audit.py)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, Text
from sqlmodel import Field, SQLModel


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (
        # The page and the API list an organisation's entries newest first; verify walks them in order.
        Index("ix_audit_entry_org_id_id", "org_id", "id"),
        Index("ix_audit_entry_at", "at"),  # retention
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    )
    org_id: int = Field(foreign_key="organization.id")
    at: float = Field(description="server Unix time of the change")
    actor: str = Field(max_length=400, description='"user <e-mail>", "key <id> (<prefix>)" or "cli <os user>"')
    address: str | None = Field(default=None, max_length=64, description="client address; none for the CLI")
    action: str = Field(max_length=64, description="e.g. key.create, machine.delete")
    target: str = Field(max_length=400)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64, description="hash of the organisation's previous entry")
    hash: str = Field(max_length=64)
