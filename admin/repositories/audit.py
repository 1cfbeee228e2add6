"""Audit-log queries. Appends and reads only: nothing here updates an entry; `prune` deletes those
past the retention period, oldest first (the chain then starts at the oldest one kept)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text

from admin.models import AuditEntry

A = AuditEntry.__table__


def lock_chain(conn: Connection, *, org_id: int) -> None:
    """Serialises appends to one organisation's chain across server processes (PostgreSQL; SQLite
    has one writer at a time, and services/audit.py adds a lock for its threads)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(727300, :org)"), {"org": org_id})


def last_hash(conn: Connection, *, org_id: int) -> str | None:
    return conn.execute(
        select(A.c.hash).where(A.c.org_id == org_id).order_by(A.c.id.desc()).limit(1)
    ).scalar_one_or_none()


def append(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(A).values(**row))


def entries(
    conn: Connection,
    *,
    org_id: int,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int,
    offset: int,
) -> tuple[int, Sequence[Any]]:
    where = [A.c.org_id == org_id]
    for column, value in ((A.c.actor, actor), (A.c.action, action), (A.c.target, target)):
        if value:
            escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(func.lower(column).like(f"%{escaped}%", escape="\\"))
    if since is not None:
        where.append(A.c.at >= since)
    if until is not None:
        where.append(A.c.at < until)
    count = conn.execute(select(func.count()).select_from(A).where(*where)).scalar_one()
    rows = conn.execute(select(A).where(*where).order_by(A.c.id.desc()).limit(limit).offset(offset)).all()
    return count, rows


def chain(conn: Connection, *, org_id: int) -> Iterator[Any]:
    """An organisation's entries, oldest first, streamed."""
    yield from conn.execution_options(yield_per=1000).execute(select(A).where(A.c.org_id == org_id).order_by(A.c.id))


def org_ids(conn: Connection) -> list[int]:
    return [r[0] for r in conn.execute(select(A.c.org_id).distinct().order_by(A.c.org_id))]


def prune(conn: Connection, *, before: float) -> int:
    return conn.execute(delete(A).where(A.c.at < before)).rowcount
