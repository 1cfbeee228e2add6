"""Alert queries: rules, channels, silences, states (compare-and-set), events and the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, insert, not_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from admin.models import AlertChannel, AlertDelivery, AlertEvent, AlertRule, AlertSilence, AlertState, Machine
from admin.repositories.machines import FIRING_STATES, _bytewise

R = AlertRule.__table__
C = AlertChannel.__table__
SI = AlertSilence.__table__
ST = AlertState.__table__
EV = AlertEvent.__table__
D = AlertDelivery.__table__
M = Machine.__table__

ACTIVE = ("pending", "firing", "silenced", "unknown")  # every state but ok


# -- rules, channels, silences ------------------------------------------------------------------
def insert_row(conn: Connection, table: Any, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(table).returning(table.c.id), values).scalar_one())


def rows(conn: Connection, table: Any, *, org_id: int) -> Sequence[Any]:
    return conn.execute(select(table).where(table.c.org_id == org_id).order_by(table.c.id)).all()


def row(conn: Connection, table: Any, *, org_id: int, row_id: int, lock: bool = False) -> Any:
    """The row; with `lock`, on PostgreSQL locked for a delete till the commit."""
    stmt = select(table).where(table.c.org_id == org_id, table.c.id == row_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def update_row(conn: Connection, table: Any, *, org_id: int, row_id: int, values: dict[str, Any]) -> bool:
    done = conn.execute(update(table).where(table.c.org_id == org_id, table.c.id == row_id).values(values))
    return done.rowcount > 0


def delete_rule(conn: Connection, *, org_id: int, rule_id: int) -> bool:
    conn.execute(delete(ST).where(ST.c.org_id == org_id, ST.c.rule_id == rule_id))
    return conn.execute(delete(R).where(R.c.org_id == org_id, R.c.id == rule_id)).rowcount > 0


def rule_states(conn: Connection, *, rule_id: int, lock: bool) -> Sequence[Any]:
    """Every state row of a rule; with `lock` (PostgreSQL) they stay locked until the transaction
    ends, so a report's writer and this change never both act on one row."""
    stmt = select(ST).where(ST.c.rule_id == rule_id).order_by(ST.c.id)
    return conn.execute(stmt.with_for_update() if lock else stmt).all()


def delete_channel(conn: Connection, *, org_id: int, channel_id: int) -> bool:
    row(conn, C, org_id=org_id, row_id=channel_id, lock=True)  # first wait for writers of notices to it (`_live`)
    # What was waiting for this channel has nowhere to go.
    conn.execute(delete(D).where(D.c.org_id == org_id, D.c.channel_id == channel_id))
    return conn.execute(delete(C).where(C.c.org_id == org_id, C.c.id == channel_id)).rowcount > 0


def delete_silence(conn: Connection, *, org_id: int, silence_id: int) -> bool:
    return conn.execute(delete(SI).where(SI.c.org_id == org_id, SI.c.id == silence_id)).rowcount > 0


def channel_ids(conn: Connection, *, org_id: int) -> set[int]:
    return {r[0] for r in conn.execute(select(C.c.id).where(C.c.org_id == org_id))}


def machine_exists(conn: Connection, *, org_id: int, machine_id: str) -> bool:
    return bool(
        conn.execute(
            select(exists().where(M.c.org_id == org_id, _bytewise(conn, M.c.machine_id) == machine_id))
        ).scalar()
    )


# -- what the engine caches -----------------------------------------------------------------------
def all_rules(conn: Connection) -> Sequence[Any]:
    """The rules that are on (a rule turned off is evaluated nowhere)."""
    return conn.execute(select(R).where(R.c.enabled).order_by(R.c.id)).all()


def all_silences(conn: Connection, *, now: float) -> Sequence[Any]:
    # One-off silences that ended are of no further use to the engine; weekly ones recur.
    return conn.execute(select(SI).where(or_(SI.c.weekly, SI.c.ends > now))).all()


def active_states(conn: Connection) -> Sequence[Any]:
    """Every state but ok, and ok ones whose resolution is still to be told (after a silence), each
    with its machine's last contact (`machine_last_seen`; None: the machine is gone). One join,
    looked up in the machine table's (org_id, machine_id) index (in its "C" collation on
    PostgreSQL), not a query per batch of machines."""
    machine = and_(M.c.org_id == ST.c.org_id, _bytewise(conn, M.c.machine_id) == ST.c.machine_id)
    stmt = (
        select(ST, M.c.last_seen.label("machine_last_seen"))
        .select_from(ST.outerjoin(M, machine))
        .where(or_(ST.c.state.in_(ACTIVE), ST.c.notified))
    )
    return conn.execute(stmt).all()


# -- state changes: compare-and-set, so two processes never apply the same change twice --------
def claim_state(conn: Connection, old: dict[str, Any] | None, new: dict[str, Any] | None, key: dict[str, Any]) -> bool:
    """Move (rule, machine) from `old` to `new` (None: ok and nothing to tell, i.e. no row) only if
    the row is still `old`; False when another process changed it first."""
    where = and_(ST.c.rule_id == key["rule_id"], ST.c.machine_id == key["machine_id"])
    if old is None:
        if new is None:
            return True
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = dialect_insert(ST).values({**key, **new}).on_conflict_do_nothing().returning(ST.c.id)
        return conn.execute(stmt).first() is not None  # (rowcount is not reliable for this on every driver)
    same = and_(where, ST.c.state == old["state"], ST.c.since == old["since"], ST.c.notified == old["notified"])
    if new is None:
        return conn.execute(delete(ST).where(same)).rowcount > 0
    return conn.execute(update(ST).where(same).values(new)).rowcount > 0


def pending_group_due(conn: Connection, *, channel_id: int, after: float) -> float | None:
    """When the channel's waiting group goes out (a new notice joins it), if one is waiting."""
    return conn.execute(
        select(func.min(D.c.due_at)).where(
            D.c.channel_id == channel_id, D.c.state == "pending", D.c.attempts == 0, D.c.due_at > after
        )
    ).scalar()


def insert_event(conn: Connection, event: dict[str, Any], deliveries: list[dict[str, Any]]) -> None:
    conn.execute(insert(EV), event)
    if deliveries:
        conn.execute(insert(D), deliveries)


# -- the sweep --------------------------------------------------------------------------------------
def offline_candidates(
    conn: Connection,
    *,
    org_id: int,
    cutoff: float,
    now: float,
    for_seconds: float,
    machine_ids: list[str] | None,
) -> Sequence[Any]:
    """The organisation's machines silent since before `cutoff` (an index range on (org_id,
    last_seen): only the silent machines are read), leaving out machines away by their own word (a
    goodbye since their last contact, its promised return not yet overdue). Which of them a rule
    already holds firing the caller knows from its snapshot of the states: an anti-join here let
    PostgreSQL pick a quadratic plan whenever alert_state's statistics lagged behind a burst of
    new states (4 s for 5,000 offline machines)."""
    away = and_(
        M.c.goodbye_at.is_not(None),
        M.c.goodbye_at >= M.c.last_seen,
        or_(M.c.expected_back.is_(None), M.c.expected_back > now - for_seconds),
    )
    stmt = select(M.c.machine_id, M.c.last_seen).where(M.c.org_id == org_id, M.c.last_seen < cutoff, not_(away))
    if machine_ids is not None:
        stmt = stmt.where(_bytewise(conn, M.c.machine_id).in_(machine_ids))
    return conn.execute(stmt).all()


def machine_count(conn: Connection, *, org_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(M).where(M.c.org_id == org_id)).scalar_one())


def recent_offline_firings(conn: Connection, *, org_id: int, since: float) -> int:
    return int(
        conn.execute(
            select(func.count(func.distinct(EV.c.machine_id))).where(
                EV.c.org_id == org_id, EV.c.kind == "offline", EV.c.event == "firing", EV.c.at >= since
            )
        ).scalar_one()
    )


# -- reads for the API and the UI ------------------------------------------------------------------
def firing(conn: Connection, *, org_id: int, machine_id: str | None = None) -> Sequence[Any]:
    stmt = (
        select(ST, R.c.name.label("rule"), R.c.kind, R.c.severity)
        .join(R, R.c.id == ST.c.rule_id)
        .where(ST.c.org_id == org_id, ST.c.state.in_(FIRING_STATES), R.c.enabled)
        .order_by(ST.c.since.desc(), ST.c.id)
    )
    if machine_id is not None:
        stmt = stmt.where(ST.c.machine_id == machine_id)
    return conn.execute(stmt).all()


def history(
    conn: Connection, *, org_id: int, machine_id: str | None, limit: int, offset: int
) -> tuple[int, Sequence[Any]]:
    cond = EV.c.org_id == org_id
    if machine_id is not None:
        cond = and_(cond, EV.c.machine_id == machine_id)
    count = conn.execute(select(func.count()).select_from(EV).where(cond)).scalar_one()
    found = conn.execute(select(EV).where(cond).order_by(EV.c.at.desc(), EV.c.id).limit(limit).offset(offset)).all()
    return int(count), found


def deliveries_of(conn: Connection, *, event_ids: list[str]) -> Sequence[Any]:
    if not event_ids:
        return []
    return conn.execute(
        select(D.c.event_id, D.c.channel_id, D.c.state, D.c.attempts, D.c.sent_at, D.c.last_error).where(
            D.c.event_id.in_(event_ids)
        )
    ).all()


def acknowledge(
    conn: Connection, *, org_id: int, rule_id: int, machine_id: str, until: float | None, by: str | None
) -> bool:
    done = conn.execute(
        update(ST)
        .where(ST.c.org_id == org_id, ST.c.rule_id == rule_id, ST.c.machine_id == machine_id)
        .values(acked_until=until, acked_by=by)
    )
    return done.rowcount > 0


# -- the outbox ---------------------------------------------------------------------------------------
def due_deliveries(conn: Connection, *, now: float, limit: int, lock: bool) -> Sequence[Any]:
    """Due deliveries with their event and channel. With `lock` (PostgreSQL) the rows stay locked
    by this transaction and rows locked by another process are skipped: each is sent by one."""
    stmt = (
        select(D.c.id, D.c.org_id, D.c.channel_id, D.c.attempts, D.c.event_id)
        .where(D.c.state == "pending", D.c.due_at <= now)
        .order_by(D.c.due_at, D.c.id)
        .limit(limit)
    )
    if lock:
        stmt = stmt.with_for_update(skip_locked=True)
    return conn.execute(stmt).all()


def events_by_id(conn: Connection, ids: list[str]) -> dict[str, Any]:
    return {r.id: r for r in conn.execute(select(EV).where(EV.c.id.in_(ids)))} if ids else {}


def channels_by_id(conn: Connection, ids: list[int]) -> dict[int, Any]:
    return {r.id: r for r in conn.execute(select(C).where(C.c.id.in_(ids)))} if ids else {}


def mark_sent(conn: Connection, *, delivery_ids: list[int], now: float) -> None:
    conn.execute(update(D).where(D.c.id.in_(delivery_ids)).values(state="sent", sent_at=now, attempts=D.c.attempts + 1))


def mark_failed(conn: Connection, *, delivery_ids: list[int], error: str, retry_at: float | None) -> None:
    values: dict[str, Any] = {"attempts": D.c.attempts + 1, "last_error": error[:1000]}
    if retry_at is None:
        values["state"] = "failed"
    else:
        values["due_at"] = retry_at
    conn.execute(update(D).where(D.c.id.in_(delivery_ids)).values(values))


def count_pending_deliveries(conn: Connection) -> int:
    """Notices not sent yet (due now or waiting out a retry), every organisation's: GET /metrics."""
    return conn.execute(select(func.count()).select_from(D).where(D.c.state == "pending")).scalar_one()


def next_due(conn: Connection) -> float | None:
    return conn.execute(select(func.min(D.c.due_at)).where(D.c.state == "pending")).scalar()


def live_rule(conn: Connection, *, rule_id: int, org_id: int, channels: Sequence[int]) -> dict[int, str] | None:
    """None when the rule is gone; else the kinds of those of its `channels` that still exist.
    Both stay until the commit (see `_live`)."""
    if not _live(conn, R, [rule_id]):
        return None
    return {r.id: r.kind for r in _live(conn, C, channels, C.c.kind, where=C.c.org_id == org_id)} if channels else {}


def _live(conn: Connection, table: Any, ids: Sequence[int], *columns: Any, where: Any = None) -> Sequence[Any]:
    """The rows of `ids` that still exist. Rows written next refer to them: a process's cached
    rules and channels may lag behind a deletion made through another process, and a foreign key
    that fails costs the whole report. On PostgreSQL the rows are key-share locked until the
    commit, as the foreign key's own check would: a deletion under way is waited for, then seen."""
    stmt = select(table.c.id, *columns).where(table.c.id.in_(ids))
    if where is not None:
        stmt = stmt.where(where)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(key_share=True)
    return conn.execute(stmt).all()


def say_goodbye(conn: Connection, *, org_id: int, machine_id: str, now: float, expected_back: float | None) -> bool:
    """The machine's agent stopped cleanly: away from now (its last contact), back when it said."""
    done = conn.execute(
        update(M)
        .where(M.c.org_id == org_id, _bytewise(conn, M.c.machine_id) == machine_id)
        .values(last_seen=now, goodbye_at=now, expected_back=expected_back)
    )
    return done.rowcount > 0
