"""Machine, history-sample and expiry queries (SQLAlchemy Core on the SQLModel tables)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import (
    Connection,
    Integer,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from admin.models import AlertRule, AlertState, ExpiredMachine, Machine, Sample
from common.constants import SAMPLE_MIN_SPACING_SECONDS

M = Machine.__table__
S = Sample.__table__
E = ExpiredMachine.__table__
ST = AlertState.__table__
R = AlertRule.__table__

# The alert states that fire now (as GET /api/alerts lists them): firing, firing inside a silence,
# and firing when the machine went offline (unknown).
FIRING_STATES = ("firing", "silenced", "unknown")


class MachineFilter(Protocol):
    """What a fleet listing is narrowed by (services.fleet.FleetFilter is the one callers build)."""

    @property
    def os(self) -> str | None: ...
    @property
    def status(self) -> str | None: ...  # "online" | "offline"
    @property
    def q(self) -> str | None: ...
    @property
    def health(self) -> str | None: ...  # "ok" | "warning" | "critical"


# Sort keys the UI offers (services.fleet.SORT_KEYS); the API always sorts by machine_id.
SORT_COLUMNS = {
    "machine_id": M.c.machine_id,
    "hostname": M.c.hostname,
    "os": M.c.os,
    "last_seen": M.c.last_seen,
    "cpu_percent": M.c.cpu_percent,
    "ram_percent": M.c.ram_percent,
    "disk_percent": M.c.disk_percent,
    "health_score": M.c.health_score,
}
TEXT_SORTS = {"machine_id", "hostname", "os"}  # listed in byte order on every backend


def upsert_statements(dialect_name: str, sample_spacing: float = SAMPLE_MIN_SPACING_SECONDS):
    """The two upserts of the hot path, built once: a report and a heartbeat; and the insert of a
    history sample, kept at least `sample_spacing` seconds from the machine's others."""
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    report = dialect_insert(M)
    report = report.on_conflict_do_update(
        index_elements=[M.c.org_id, M.c.machine_id],
        set_={
            "last_seen": report.excluded.last_seen,
            "ts": report.excluded.ts,
            "report": report.excluded.report,
            "system": report.excluded.system,
            "hostname": report.excluded.hostname,
            "os": report.excluded.os,
            "hardware_id": func.coalesce(report.excluded.hardware_id, M.c.hardware_id),
            "cpu_percent": report.excluded.cpu_percent,
            "ram_percent": report.excluded.ram_percent,
            "disk_percent": report.excluded.disk_percent,
            "health_score": report.excluded.health_score,
            "health_status": report.excluded.health_status,
        },
    )
    ping = dialect_insert(M)
    ping = ping.on_conflict_do_update(
        index_elements=[M.c.org_id, M.c.machine_id],
        set_={
            "last_seen": ping.excluded.last_seen,
            "last_ping": ping.excluded.last_ping,
            "hardware_id": func.coalesce(ping.excluded.hardware_id, M.c.hardware_id),
        },
    )
    return report, ping, _spaced_sample_insert(sample_spacing) if sample_spacing > 0 else insert(S)


def _spaced_sample_insert(seconds: float):
    """Insert a history sample unless the machine has one within `seconds` of it
    (security finding 2: a key cannot fill the history faster). The check is a probe of the
    (org_id, machine_id, ts) index; the writer runs it row by row in one transaction, so two
    samples of one batch see each other."""
    columns = ["org_id", "machine_id", "ts", "cpu_percent", "ram_percent", "disk_percent", "health_score"]
    # Explicit casts: PostgreSQL cannot type a bare parameter (a NULL score) in a SELECT list.
    param = {name: cast(bindparam(name), S.c[name].type) for name in columns}
    spacing = literal_column(repr(float(seconds)))
    values = select(*param.values())
    near = (
        (S.c.org_id == param["org_id"])
        & (S.c.machine_id == param["machine_id"])
        & (S.c.ts > param["ts"] - spacing)
        & (S.c.ts < param["ts"] + spacing)
    )
    return insert(S).from_select(columns, values.where(~exists().where(near)))


def _filtered(stmt, *, org_id: int, now: float, offline_after: float, flt: MachineFilter):
    stmt = stmt.where(M.c.org_id == org_id)
    if flt.os:
        stmt = stmt.where(func.lower(M.c.os) == flt.os.lower())
    if flt.status == "online":
        stmt = stmt.where(M.c.last_seen >= now - offline_after)
    elif flt.status == "offline":
        stmt = stmt.where(M.c.last_seen < now - offline_after)
    if flt.q:
        stmt = stmt.where(
            or_(M.c.machine_id.icontains(flt.q, autoescape=True), M.c.hostname.icontains(flt.q, autoescape=True))
        )
    if flt.health:
        stmt = stmt.where(M.c.health_status == flt.health)
    return stmt


def _bytewise(conn: Connection, column):
    """`column` compared as bytes. PostgreSQL sorts text by locale; "C" gives SQLite's byte order,
    so pages agree between backends. The machine table's unique index is built in "C" there
    (migration 0002), so listing by machine id and finding one machine by it are index scans only
    when the query uses the same collation (equality itself is the same in every collation)."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def list_machines(
    conn: Connection,
    *,
    org_id: int,
    now: float,
    offline_after: float,
    flt: MachineFilter,
    limit: int,
    offset: int,
    sort: str = "machine_id",
    descending: bool = False,
    with_alerts: bool = False,
) -> tuple[int, Sequence]:
    count = conn.execute(
        _filtered(select(func.count()).select_from(M), org_id=org_id, now=now, offline_after=offline_after, flt=flt)
    ).scalar_one()
    column = SORT_COLUMNS[sort]
    key = _bytewise(conn, column) if sort in TEXT_SORTS else column
    order = [key.desc() if descending else key.asc()]
    if sort != "machine_id":
        order.append(_bytewise(conn, M.c.machine_id))  # ties broken stably
    columns = [M, *_alert_columns()] if with_alerts else [M]
    rows = conn.execute(
        _filtered(select(*columns), org_id=org_id, now=now, offline_after=offline_after, flt=flt)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    ).all()
    return count, rows


def _alert_columns() -> list:
    """Per listed machine: how many of its alerts fire now (`alerts_firing`) and the worst severity
    among them (`alerts_critical`: 1 if any is critical). Correlated subqueries in the page's own
    query, evaluated for the page's rows only (one query per page, not one per machine); they
    range over the org's firing states by ix_alert_state_org_state."""
    mine = (
        (ST.c.org_id == M.c.org_id)
        & (ST.c.machine_id == M.c.machine_id)
        & ST.c.state.in_(FIRING_STATES)
        & R.c.enabled  # (a rule turned off resolves its alerts; a report racing that is not shown)
    )
    rules = ST.join(R, R.c.id == ST.c.rule_id)
    firing = select(func.count()).select_from(rules).where(mine).scalar_subquery().label("alerts_firing")
    critical = (
        select(func.coalesce(func.max(case((R.c.severity == "critical", 1), else_=0)), 0))
        .select_from(rules)
        .where(mine)
        .scalar_subquery()
        .label("alerts_critical")
    )
    return [firing, critical]


def get_machine(conn: Connection, *, org_id: int, machine_id: str):
    return conn.execute(select(M).where(M.c.org_id == org_id, _bytewise(conn, M.c.machine_id) == machine_id)).first()


def machine_exists(conn: Connection, *, org_id: int, machine_id: str) -> bool:
    cond = (M.c.org_id == org_id) & (_bytewise(conn, M.c.machine_id) == machine_id)
    return conn.execute(select(exists().where(cond))).scalar_one()


def count_machines(conn: Connection, *, org_id: int) -> int:
    return conn.execute(select(func.count()).select_from(M).where(M.c.org_id == org_id)).scalar_one()


def delete_machine(conn: Connection, *, org_id: int, machine_id: str) -> bool:
    gone = conn.execute(delete(M).where(M.c.org_id == org_id, _bytewise(conn, M.c.machine_id) == machine_id)).rowcount
    conn.execute(delete(S).where(S.c.org_id == org_id, S.c.machine_id == machine_id))
    return gone > 0


def counts(conn: Connection, *, org_id: int, now: float, offline_after: float) -> dict[str, int]:
    """Summary figures for the fleet page, in one pass over the organisation's rows."""
    online = M.c.last_seen >= now - offline_after
    row = conn.execute(
        select(
            func.count(),
            func.count().filter(online),
            func.count().filter(M.c.health_status == "warning"),
            func.count().filter(M.c.health_status == "critical"),
        ).where(M.c.org_id == org_id)
    ).one()
    return {"machines": row[0], "online": row[1], "offline": row[0] - row[1], "warning": row[2], "critical": row[3]}


def distinct_os(conn: Connection, *, org_id: int) -> list[str]:
    rows = conn.execute(select(M.c.os).where(M.c.org_id == org_id, M.c.os.is_not(None)).distinct().order_by(M.c.os))
    return [r[0] for r in rows]


def history(
    conn: Connection, *, org_id: int, machine_id: str, since: float, limit: int | None = None, offset: int = 0
) -> Sequence:
    return conn.execute(
        select(S.c.ts, S.c.cpu_percent, S.c.ram_percent, S.c.disk_percent, S.c.health_score)
        .where(S.c.org_id == org_id, S.c.machine_id == machine_id, S.c.ts >= since)
        .order_by(S.c.ts, S.c.id)
        .limit(limit)
        .offset(offset)
    ).all()


def history_buckets(conn: Connection, *, org_id: int, machine_id: str, since: float, width: float) -> Sequence:
    """Samples since `since`, averaged per bucket of `width` seconds (bucket index, means, count),
    oldest first: a week of minutely samples becomes a few hundred rows inside the database."""
    scaled = S.c.ts / width
    # floor(): PostgreSQL's integer cast rounds; SQLite's truncates, which is floor for positive times.
    bucket = func.floor(scaled) if conn.dialect.name == "postgresql" else cast(scaled, Integer)
    return conn.execute(
        select(
            bucket.label("bucket"),
            func.avg(S.c.cpu_percent),
            func.avg(S.c.ram_percent),
            func.avg(S.c.disk_percent),
            func.count(),
        )
        .where(S.c.org_id == org_id, S.c.machine_id == machine_id, S.c.ts >= since)
        .group_by(bucket)
        .order_by(bucket)
    ).all()


def has_stale(conn: Connection, *, org_id: int | None, cutoff: float) -> bool:
    cond = M.c.last_seen < cutoff
    if org_id is not None:
        cond = cond & (M.c.org_id == org_id)
    return conn.execute(select(exists().where(cond))).scalar_one()


def expire_stale(conn: Connection, *, org_id: int | None, cutoff: float, now: float) -> int:
    """Remove machines silent since before `cutoff` and leave a tombstone for each (org_id None:
    every organisation, for the background job). Returns how many were removed."""
    stmt = delete(M).where(M.c.last_seen < cutoff)
    if org_id is not None:
        stmt = stmt.where(M.c.org_id == org_id)
    gone = conn.execute(stmt.returning(M.c.org_id, M.c.machine_id)).all()
    if gone:
        conn.execute(insert(E), [{"org_id": o, "machine_id": m, "expired_at": now} for o, m in gone])
    return len(gone)


def has_tombstones(conn: Connection, *, org_id: int) -> bool:
    return conn.execute(select(exists().where(E.c.org_id == org_id))).scalar_one()


def take_tombstones(conn: Connection, *, org_id: int, limit: int) -> list[str]:
    """Delete and return the organisation's `limit` oldest tombstones: each is named in exactly one
    listing; the rest wait for the next listings (security finding 3: `expired` stays small)."""
    oldest = select(E.c.id).where(E.c.org_id == org_id).order_by(E.c.expired_at, E.c.id).limit(limit)
    rows = conn.execute(
        delete(E).where(E.c.id.in_(oldest.scalar_subquery())).returning(E.c.machine_id, E.c.expired_at)
    ).all()
    return [m for m, _ in sorted(rows, key=lambda r: (r[1], r[0]))]


def prune_tombstones(conn: Connection, *, before: float) -> int:
    """Tombstones nobody listed for a long time are of no use to anyone."""
    return conn.execute(delete(E).where(E.c.expired_at < before)).rowcount


def metric_rows(conn: Connection, *, org_id: int) -> Sequence:
    """What GET /api/fleet/metrics exposes of each machine of an organisation, in machine-id order."""
    return conn.execute(
        select(
            M.c.machine_id,
            M.c.hostname,
            M.c.os,
            M.c.last_seen,
            M.c.cpu_percent,
            M.c.ram_percent,
            M.c.disk_percent,
            M.c.health_score,
        )
        .where(M.c.org_id == org_id)
        .order_by(_bytewise(conn, M.c.machine_id))
    ).all()
