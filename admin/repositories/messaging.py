"""Message, command and delivery queries (SQLAlchemy Core on the SQLModel tables).

A delivery's state changes by one conditional UPDATE (`... WHERE state = <the state read>`), so two
requests racing (an agent's `delivered` and an admin's cancel) cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, func, insert, literal, or_, select, update
from sqlalchemy.sql import ColumnElement

from admin.models import Command, Delivery, Machine, Message

MSG = Message.__table__
CMD = Command.__table__
D = Delivery.__table__
M = Machine.__table__

# Bound parameters per statement stay far below every backend's limit (SQLite: 32,766).
_CHUNK = 1000
INBOX_LIMIT = 50


def _bytewise(conn: Connection, column: Any) -> Any:
    # The machine table's unique index is "C"-collated on PostgreSQL (migration 0002).
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def known_machine_ids(conn: Connection, *, org_id: int, machine_ids: Sequence[str]) -> set[str]:
    """Which of `machine_ids` the organisation has."""
    found: set[str] = set()
    for start in range(0, len(machine_ids), _CHUNK):
        chunk = machine_ids[start : start + _CHUNK]
        rows = conn.execute(
            select(M.c.machine_id).where(M.c.org_id == org_id, _bytewise(conn, M.c.machine_id).in_(chunk))
        )
        found.update(r[0] for r in rows)
    return found


def _item_table(item_type: str) -> Any:
    return MSG if item_type == "message" else CMD


def _item_column(item_type: str) -> Any:
    return D.c.message_id if item_type == "message" else D.c.command_id


def insert_item(conn: Connection, item_type: str, row: dict[str, Any]) -> None:
    conn.execute(insert(_item_table(item_type)), row)


def insert_deliveries_to_all(
    conn: Connection, *, org_id: int, item_type: str, item_id: str, expires: float, now: float
) -> int:
    """One delivery per machine the organisation has now, in one INSERT ... SELECT."""
    columns = ["org_id", "machine_id", "message_id", "command_id", "state", "expires", "created", "updated"]
    columns += ["output_cut"]
    source = select(
        M.c.org_id,
        M.c.machine_id,
        literal(item_id if item_type == "message" else None, D.c.message_id.type),
        literal(item_id if item_type == "command" else None, D.c.command_id.type),
        literal("queued", D.c.state.type),
        literal(expires, D.c.expires.type),
        literal(now, D.c.created.type),
        literal(now, D.c.updated.type),
        literal(False, D.c.output_cut.type),
    ).where(M.c.org_id == org_id)
    conn.execute(insert(D).from_select(columns, source))
    # Counted, not the statement's rowcount: psycopg reports -1 for INSERT ... SELECT.
    column = _item_column(item_type)
    return conn.execute(select(func.count()).select_from(D).where(column == item_id)).scalar_one()


def insert_deliveries(
    conn: Connection,
    *,
    org_id: int,
    item_type: str,
    item_id: str,
    machine_ids: Iterable[str],
    expires: float,
    now: float,
) -> int:
    rows = [
        {
            "org_id": org_id,
            "machine_id": machine_id,
            "message_id": item_id if item_type == "message" else None,
            "command_id": item_id if item_type == "command" else None,
            "state": "queued",
            "expires": expires,
            "created": now,
            "updated": now,
            "output_cut": False,
        }
        for machine_id in machine_ids
    ]
    if rows:
        conn.execute(insert(D), rows)
    return len(rows)


def set_targets(conn: Connection, *, item_type: str, item_id: str, targets: int) -> None:
    table = _item_table(item_type)
    conn.execute(update(table).where(table.c.id == item_id).values(targets=targets))


def _feature_filter(item_types: Iterable[str]) -> ColumnElement[bool]:
    wanted = [_item_column(t).is_not(None) for t in item_types]
    return or_(*wanted) if wanted else literal(False)


def queued_items(
    conn: Connection, *, org_id: int, machine_ids: Sequence[str], now: float, item_types: Sequence[str]
) -> list[Row[Any]]:
    """The machines' queued, unexpired deliveries of the enabled kinds with their item: for each
    machine its oldest INBOX_LIMIT, oldest first. One query per _CHUNK machines, whatever their
    number (all the agents a send woke read their inboxes together)."""
    rows: list[Row[Any]] = []
    for start in range(0, len(machine_ids), _CHUNK):
        chunk = machine_ids[start : start + _CHUNK]
        ranked = (
            select(
                D.c.id,
                func.row_number().over(partition_by=D.c.machine_id, order_by=D.c.id).label("rank"),
            )
            .where(
                D.c.org_id == org_id,
                D.c.machine_id.in_(chunk) if len(chunk) > 1 else D.c.machine_id == chunk[0],
                D.c.state == "queued",
                D.c.expires > now,
                _feature_filter(item_types),
            )
            .subquery()
        )
        stmt = (
            select(
                D.c.id,
                D.c.machine_id,
                D.c.expires,
                D.c.message_id,
                MSG.c.title,
                MSG.c.body,
                MSG.c.severity,
                MSG.c.created.label("message_created"),
                D.c.command_id,
                CMD.c.kind,
                CMD.c.args,
                CMD.c.timeout,
                CMD.c.created.label("command_created"),
            )
            .select_from(
                ranked.join(D, D.c.id == ranked.c.id)
                .outerjoin(MSG, MSG.c.id == D.c.message_id)
                .outerjoin(CMD, CMD.c.id == D.c.command_id)
            )
            .where(ranked.c.rank <= INBOX_LIMIT)
            .order_by(D.c.id)
        )
        rows += conn.execute(stmt).all()
    return rows


def machines_with_queued(conn: Connection, *, org_id: int, now: float, item_types: Sequence[str]) -> set[str]:
    """The organisation's machines that have something queued (the heartbeat's hint)."""
    rows = conn.execute(
        select(D.c.machine_id)
        .where(D.c.org_id == org_id, D.c.state == "queued", D.c.expires > now, _feature_filter(item_types))
        .distinct()
    )
    return {r[0] for r in rows}


def count_queued(conn: Connection) -> int:
    """Deliveries of every organisation still waiting for their machine (the server's metrics)."""
    return conn.execute(select(func.count()).select_from(D).where(D.c.state == "queued")).scalar_one()


def get_delivery(conn: Connection, *, org_id: int, delivery_id: int) -> Row[Any] | None:
    return conn.execute(select(D).where(D.c.id == delivery_id, D.c.org_id == org_id)).first()


def get_deliveries(conn: Connection, *, delivery_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """The deliveries of these ids, whichever organisation's (the caller checks), by id."""
    found: dict[int, Row[Any]] = {}
    for start in range(0, len(delivery_ids), _CHUNK):
        rows = conn.execute(select(D).where(D.c.id.in_(delivery_ids[start : start + _CHUNK])))
        found.update((row.id, row) for row in rows)
    return found


def move_deliveries(
    conn: Connection, *, delivery_ids: Sequence[int], from_state: str, values: dict[str, Any]
) -> set[int]:
    """`move_delivery` for many rows with the same change, in one statement per _CHUNK rows; returns
    the ids it changed (the others were moved by someone else first)."""
    moved: set[int] = set()
    for start in range(0, len(delivery_ids), _CHUNK):
        chunk = delivery_ids[start : start + _CHUNK]
        stmt = update(D).where(D.c.id.in_(chunk), D.c.state == from_state).values(**values).returning(D.c.id)
        moved.update(conn.execute(stmt).scalars())
    return moved


def move_delivery(conn: Connection, *, delivery_id: int, from_state: str, values: dict[str, Any]) -> bool:
    """Change a delivery's row if it is still in `from_state`; False when someone else moved it first."""
    done = conn.execute(update(D).where(D.c.id == delivery_id, D.c.state == from_state).values(**values))
    return done.rowcount == 1


def expire_due(
    conn: Connection,
    *,
    now: float,
    item_type: str | None = None,
    item_id: str | None = None,
    org_id: int | None = None,
    machine_id: str | None = None,
) -> int:
    """Queued deliveries past their expiry become `expired`, and so do commands delivered but not
    yet running (an agent that takes one after its expiry gets 409 and never runs it)."""
    due = or_(D.c.state == "queued", and_(D.c.state == "delivered", D.c.command_id.is_not(None)))
    stmt = update(D).where(D.c.state.in_(("queued", "delivered")), D.c.expires <= now, due)
    if item_type is not None:
        stmt = stmt.where(_item_column(item_type) == item_id)
    if org_id is not None:
        stmt = stmt.where(D.c.org_id == org_id)
    if machine_id is not None:
        stmt = stmt.where(D.c.machine_id == machine_id)
    return conn.execute(stmt.values(state="expired", updated=now, finished_at=now)).rowcount


def cancel_queued(
    conn: Connection,
    *,
    org_id: int,
    now: float,
    item_type: str | None = None,
    item_id: str | None = None,
    machine_id: str | None = None,
) -> int:
    """Deliveries not yet delivered become `cancelled`: of one item, or of one machine."""
    stmt = update(D).where(D.c.org_id == org_id, D.c.state == "queued")
    if item_type is not None:
        stmt = stmt.where(_item_column(item_type) == item_id)
    if machine_id is not None:
        stmt = stmt.where(D.c.machine_id == machine_id)
    return conn.execute(stmt.values(state="cancelled", updated=now, finished_at=now)).rowcount


def get_item(conn: Connection, *, org_id: int, item_type: str, item_id: str) -> Row[Any] | None:
    table = _item_table(item_type)
    return conn.execute(select(table).where(table.c.id == item_id, table.c.org_id == org_id)).first()


def deliveries_of(
    conn: Connection,
    *,
    item_type: str,
    item_id: str,
    limit: int | None = None,
    offset: int = 0,
    machine_id: str | None = None,
) -> Sequence[Row[Any]]:
    stmt = select(D).where(_item_column(item_type) == item_id)
    if machine_id is not None:
        stmt = stmt.where(D.c.machine_id == machine_id)
    stmt = stmt.order_by(_bytewise(conn, D.c.machine_id)).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return conn.execute(stmt).all()


def state_counts(conn: Connection, *, item_type: str, item_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per item, how many deliveries are in each state."""
    column = _item_column(item_type)
    counts: dict[str, dict[str, int]] = {item_id: {} for item_id in item_ids}
    if item_ids:
        rows = conn.execute(
            select(column, D.c.state, func.count()).where(column.in_(item_ids)).group_by(column, D.c.state)
        )
        for item_id, state, n in rows:
            counts[item_id][state] = n
    return counts


def list_items(
    conn: Connection, *, org_id: int, item_type: str, limit: int, offset: int
) -> tuple[int, Sequence[Row[Any]]]:
    """The organisation's messages or commands, newest first."""
    table = _item_table(item_type)
    count = conn.execute(select(func.count()).select_from(table).where(table.c.org_id == org_id)).scalar_one()
    rows = conn.execute(
        select(table)
        .where(table.c.org_id == org_id)
        .order_by(table.c.created.desc(), table.c.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return count, rows


def machine_deliveries(
    conn: Connection, *, org_id: int, machine_id: str, item_type: str, limit: int
) -> Sequence[Row[Any]]:
    """A machine's latest deliveries of one kind, newest first, with their item (the machine page)."""
    table = _item_table(item_type)
    column = _item_column(item_type)
    return conn.execute(
        select(D, *[c.label(f"item_{c.name}") for c in table.c])
        .select_from(D.join(table, table.c.id == column))
        .where(D.c.org_id == org_id, D.c.machine_id == machine_id, column.is_not(None))
        .order_by(D.c.id.desc())
        .limit(limit)
    ).all()
