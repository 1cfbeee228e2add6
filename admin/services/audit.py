"""The audit log: who changed what, when, from where; append-only and chained by hash.

Every change to keys, users and roles, machines, enrolment, messages, commands, alert rules,
channels, silences, install links and organisation settings calls `record()` on the connection of
the transaction that makes the change, so the entry exists exactly when the change does.

Each organisation's entries form a chain: an entry's hash covers its fields and the previous
entry's hash, so altering or removing an entry in the middle breaks every later link, and
`dashfleet-admin audit verify` names the first broken one. Nothing updates an entry (a database
trigger refuses it); the only deletion is the retention job's, oldest first, after which the chain
starts at the oldest entry kept. (Removing the newest entries leaves no broken link: export the log,
or compare its count with your backups', to notice that.)
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from admin.repositories import audit as repo

GENESIS = "0" * 64
# For callers that do not say who acted yet: visible as such in the log, never silently missing.
UNATTRIBUTED = "unattributed"
MAX_DETAIL_CHARS = 4000


@dataclass(frozen=True)
class Actor:
    """Who made a change, and from which address."""

    name: str
    address: str | None = None

    @classmethod
    def user(cls, email: str, address: str | None = None) -> Actor:
        return cls(f"user {email}", address)

    @classmethod
    def key(cls, key_id: int, address: str | None = None) -> Actor:
        return cls(f"key {key_id}", address)

    @classmethod
    def cli(cls) -> Actor:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # a container's uid with no passwd entry
            who = "unknown"
        return cls(f"cli {who}")

    def __str__(self) -> str:
        return self.name


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def _fields(
    org_id: int, at: float, actor: str, address: str | None, action: str, target: str, detail: str
) -> dict[str, Any]:
    return {
        "org_id": org_id,
        "at": at,
        "actor": actor,
        "address": address,
        "action": action,
        "target": target,
        "detail": detail,
    }


def record(
    conn: Connection,
    *,
    org_id: int,
    actor: Actor | str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Appends an entry in the caller's transaction (committed or rolled back with the change)."""
    who = actor if isinstance(actor, Actor) else Actor(str(actor))
    text = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, default=str)[:MAX_DETAIL_CHARS]
    fields = _fields(org_id, time.time(), who.name[:400], who.address, action[:64], target[:400], text)
    if conn.dialect.name == "sqlite":
        # Take SQLite's write lock before reading the chain's head, so that head is still the head
        # when this transaction commits (a statement that changes no row is enough).
        conn.exec_driver_sql("UPDATE audit_entry SET id = id WHERE 0")
    else:
        repo.lock_chain(conn, org_id=org_id)
    _append(conn, fields)


def _append(conn: Connection, fields: dict[str, Any]) -> None:
    prev = repo.last_hash(conn, org_id=fields["org_id"]) or GENESIS
    repo.append(conn, {**fields, "prev_hash": prev, "hash": entry_hash(prev, fields)})


@dataclass(frozen=True)
class Verdict:
    org_id: int
    checked: int
    broken_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def _public(row: Any) -> dict[str, Any]:
    return {
        "at": row.at,
        "actor": row.actor,
        "address": row.address,
        "action": row.action,
        "target": row.target,
        "detail": json.loads(row.detail),
    }


class AuditService:
    def __init__(self, engine: Engine, retention_days: float) -> None:
        self.engine = engine
        self.retention_days = retention_days

    def record(
        self, *, org_id: int, actor: Actor | str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        """An entry in a transaction of its own, for changes made outside the database."""
        with self.engine.begin() as conn:
            record(conn, org_id=org_id, actor=actor, action=action, target=target, detail=detail)

    def entries(self, *, org_id: int, limit: int = 100, offset: int = 0, **filters: Any) -> dict[str, Any]:
        with self.engine.connect() as conn:
            count, rows = repo.entries(conn, org_id=org_id, limit=limit, offset=offset, **filters)
        return {"count": count, "data": [_public(r) for r in rows]}

    def csv(self, *, org_id: int, **filters: Any) -> str:
        """Every entry matching the filters, newest first, as CSV (the web UI's export)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["at (UTC)", "actor", "address", "action", "target", "detail"])
        offset = 0
        while True:
            page = self.entries(org_id=org_id, limit=1000, offset=offset, **filters)["data"]
            for e in page:
                at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e["at"]))
                # A cell starting with = + - @ is a formula to a spreadsheet: prefix it with a quote.
                cells = [at, e["actor"], e["address"] or "", e["action"], e["target"], json.dumps(e["detail"])]
                writer.writerow(["'" + c if c[:1] in ("=", "+", "-", "@") else c for c in cells])
            if len(page) < 1000:
                return out.getvalue()
            offset += 1000

    def verify(self, *, org_id: int | None = None) -> list[Verdict]:
        """Each organisation's chain checked from its oldest entry; the first broken link named."""
        with self.engine.connect() as conn:
            orgs = [org_id] if org_id is not None else repo.org_ids(conn)
            return [self._verify_one(conn, org) for org in orgs]

    @staticmethod
    def _verify_one(conn: Connection, org_id: int) -> Verdict:
        prev: str | None = None
        checked = 0
        for row in repo.chain(conn, org_id=org_id):
            if prev is not None and row.prev_hash != prev:
                return Verdict(org_id, checked, row.id, "the entry before it was changed or removed")
            fields = _fields(row.org_id, row.at, row.actor, row.address, row.action, row.target, row.detail)
            if entry_hash(row.prev_hash, fields) != row.hash:
                return Verdict(org_id, checked, row.id, "this entry was changed after it was written")
            prev = row.hash
            checked += 1
        return Verdict(org_id, checked)

    def prune(self) -> int:
        """Entries older than the retention period (the background job)."""
        with self.engine.begin() as conn:
            return repo.prune(conn, before=time.time() - self.retention_days * 86400)
