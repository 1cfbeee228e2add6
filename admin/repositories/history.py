"""History tiers' queries: rolling samples up into 5-minute buckets and those into hourly ones,
reading any tier per bucket of a chart, retention, and the rollup's position.

The rollup is driven by sample ids: the samples added since the last run name the buckets they
fall in, and each of those buckets is computed again from everything it holds (an upsert), so a run
repeated, or a report that waited in the agent's queue, gives the same rows as one clean run.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

from admin.models.history import BUCKET_METRICS

RAW = 0  # the "width" of raw samples, in what callers pass around
FIVE_MINUTES = 300
HOUR = 3600
ROLLUP_LOCK = (727301, 0)  # pg_try_advisory_xact_lock(727301, 0): one rollup at a time (audit uses 727300)


def _bucket(conn: Connection, column: str, width: int) -> str:
    """The start of the `width`-second bucket holding `column` (a Unix time), as an integer."""
    if conn.dialect.name == "postgresql":
        return f"(floor({column} / {width}) * {width})::bigint"
    return f"(CAST({column} / {width} AS INTEGER) * {width})"  # truncation is floor for times > 0


_BUCKET_COLUMNS = ", ".join(f"{m}_min, {m}_max, {m}_avg, {m}_count" for m, _ in BUCKET_METRICS)


def _upsert_tail(keep_before: str) -> str:
    """Replace a bucket computed again; one older than `keep_before` (whose sources retention may
    have pruned in part) is only created, never replaced by a part of itself."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in ["samples", *_BUCKET_COLUMNS.split(", ")])
    return (
        f"ON CONFLICT (org_id, machine_id, width, ts) DO UPDATE SET {updates} WHERE history_bucket.ts >= {keep_before}"
    )


def _touched(conn: Connection, width: int) -> str:
    """The buckets of `width` holding a sample with id in (after_id, upto_id]. (A subquery, not a
    WITH: Python's sqlite3 counts the rows only of a statement that starts with INSERT.) Callers
    CROSS JOIN it with what it names: SQLite then keeps it the outer loop and probes the primary
    key per bucket (it chose to scan every 5-minute bucket of every machine through the retention
    index instead); PostgreSQL plans a CROSS JOIN with a WHERE as any join."""
    return (
        f"SELECT DISTINCT org_id, machine_id, {_bucket(conn, 'ts', width)} AS start "
        "FROM sample WHERE id > :after_id AND id <= :upto_id"
    )


_SAMPLE_AGGREGATES = ", ".join(f"min(s.{col}), max(s.{col}), avg(s.{col}), count(s.{col})" for _, col in BUCKET_METRICS)


def recompute_five_minutes(conn: Connection, *, after_id: int, upto_id: int, keep_before: float) -> int:
    """Compute again, from all their samples, the 5-minute buckets from `keep_before` on that hold
    a sample with id in (after_id, upto_id]: raw retention has pruned none of their samples, so
    running it twice gives the same rows."""
    replace = ", ".join(f"{c} = excluded.{c}" for c in ["samples", *_BUCKET_COLUMNS.split(", ")])
    return conn.execute(
        text(f"""
        INSERT INTO history_bucket (org_id, machine_id, width, ts, samples, {_BUCKET_COLUMNS})
        SELECT t.org_id, t.machine_id, {FIVE_MINUTES}, t.start, count(*), {_SAMPLE_AGGREGATES}
        FROM ({_touched(conn, FIVE_MINUTES)}) t CROSS JOIN sample s
        WHERE s.org_id = t.org_id AND s.machine_id = t.machine_id
          AND s.ts >= t.start AND s.ts < t.start + {FIVE_MINUTES} AND t.start >= :keep_before
        GROUP BY t.org_id, t.machine_id, t.start
        ON CONFLICT (org_id, machine_id, width, ts) DO UPDATE SET {replace}
        """),
        {"after_id": after_id, "upto_id": upto_id, "keep_before": keep_before},
    ).rowcount


def merge_old_five_minutes(conn: Connection, *, after_id: int, upto_id: int, keep_before: float) -> int:
    """Merge the samples with id in (after_id, upto_id] into their 5-minute buckets older than
    `keep_before`, whose first samples may be pruned already (a report that waited in the agent's
    queue). Not repeatable: the caller runs it once, with the position's move past these ids."""
    start = _bucket(conn, "s.ts", FIVE_MINUTES)
    return conn.execute(
        text(f"""
        INSERT INTO history_bucket (org_id, machine_id, width, ts, samples, {_BUCKET_COLUMNS})
        SELECT s.org_id, s.machine_id, {FIVE_MINUTES}, {start}, count(*), {_SAMPLE_AGGREGATES}
        FROM sample s
        WHERE s.id > :after_id AND s.id <= :upto_id AND {start} < :keep_before
        GROUP BY s.org_id, s.machine_id, {start}
        ON CONFLICT (org_id, machine_id, width, ts) DO UPDATE SET {_merge(conn)}
        """),
        {"after_id": after_id, "upto_id": upto_id, "keep_before": keep_before},
    ).rowcount


def _merge(conn: Connection) -> str:
    """SET clauses adding `excluded` (new samples) to a stored bucket; a null is no reading."""
    least, greatest = ("least", "greatest") if conn.dialect.name == "postgresql" else ("min", "max")
    clauses = ["samples = history_bucket.samples + excluded.samples"]
    for m, _ in BUCKET_METRICS:
        old, new = f"history_bucket.{m}", f"excluded.{m}"
        clauses += [
            # SQLite's two-argument min() is null when either is: each side stands in for a null.
            f"{m}_min = {least}(coalesce({old}_min, {new}_min), coalesce({new}_min, {old}_min))",
            f"{m}_max = {greatest}(coalesce({old}_max, {new}_max), coalesce({new}_max, {old}_max))",
            f"{m}_avg = (coalesce({old}_avg * {old}_count, 0) + coalesce({new}_avg * {new}_count, 0))"
            f" / nullif({old}_count + {new}_count, 0)",
            f"{m}_count = {old}_count + {new}_count",
        ]
    return ", ".join(clauses)


def roll_up_hours(conn: Connection, *, after_id: int, upto_id: int, keep_before: float) -> int:
    """Compute again, from the 5-minute buckets, every hour holding a sample of (after_id, upto_id]:
    min of the mins, max of the maxes, the mean weighted by each bucket's readings."""
    aggregates = ", ".join(
        f"min(b.{m}_min), max(b.{m}_max), sum(b.{m}_avg * b.{m}_count) / nullif(sum(b.{m}_count), 0), sum(b.{m}_count)"
        for m, _ in BUCKET_METRICS
    )
    sql = f"""
        INSERT INTO history_bucket (org_id, machine_id, width, ts, samples, {_BUCKET_COLUMNS})
        SELECT t.org_id, t.machine_id, {HOUR}, t.start, sum(b.samples), {aggregates}
        FROM ({_touched(conn, HOUR)}) t CROSS JOIN history_bucket b
        WHERE b.org_id = t.org_id AND b.machine_id = t.machine_id AND b.width = {FIVE_MINUTES}
          AND b.ts >= t.start AND b.ts < t.start + {HOUR}
        GROUP BY t.org_id, t.machine_id, t.start
        {_upsert_tail(":keep_before")}
    """
    params = {"after_id": after_id, "upto_id": upto_id, "keep_before": keep_before}
    return conn.execute(text(sql), params).rowcount


def try_lock(conn: Connection) -> bool:
    """One rollup at a time across server processes: PostgreSQL's advisory lock, held until the
    transaction ends; False when another process holds it. SQLite serves one process, and its write
    transactions run one at a time anyway."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:a, :b)"), dict(zip("ab", ROLLUP_LOCK))).scalar())


def position(conn: Connection) -> tuple[int, int, float]:
    """(done_id, seen_id, seen_at); the row is made by the migration."""
    row = conn.execute(text("SELECT done_id, seen_id, seen_at FROM history_rollup WHERE id = 1")).one()
    return int(row[0]), int(row[1]), float(row[2])


def set_position(conn: Connection, *, done_id: int, seen_id: int, seen_at: float) -> None:
    conn.execute(
        text("UPDATE history_rollup SET done_id = :done, seen_id = :seen, seen_at = :at WHERE id = 1"),
        {"done": done_id, "seen": seen_id, "at": seen_at},
    )


def newest_sample_id(conn: Connection) -> int:
    return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM sample")).scalar_one())


def prune(
    conn: Connection, *, samples_before: float, rolled_up_to: int, five_before: float, hours_before: float
) -> dict:
    """Delete what each tier keeps no longer; a sample not yet rolled up stays until it is."""
    samples = conn.execute(
        text("DELETE FROM sample WHERE ts < :before AND id <= :done"), {"before": samples_before, "done": rolled_up_to}
    ).rowcount
    if samples:
        _clamp_position(conn)
    buckets = 0
    for width, before in ((FIVE_MINUTES, five_before), (HOUR, hours_before)):
        buckets += conn.execute(
            text("DELETE FROM history_bucket WHERE width = :width AND ts < :before"), {"width": width, "before": before}
        ).rowcount
    return {"samples": samples, "buckets": buckets}


def chart_buckets(
    conn: Connection, *, org_id: int, machine_id: str, tier: int, since: int, until: int, width: int
) -> Sequence:
    """One machine's history from `tier` (RAW, FIVE_MINUTES or HOUR) in `width`-second buckets
    (a multiple of the tier's): (start, samples, then min, max, mean, count per metric), oldest first.
    Integer bounds: SQLite compares an integer key with a float bound several times slower."""
    start = _bucket(conn, "ts", width)
    if tier == RAW:
        source = "sample WHERE"
        aggregates = ", ".join(f"min({col}), max({col}), avg({col}), count({col})" for _, col in BUCKET_METRICS)
        samples = "count(*)"
    else:
        source = f"history_bucket WHERE width = {int(tier)} AND"
        aggregates = ", ".join(
            f"min({m}_min), max({m}_max), sum({m}_avg * {m}_count) / nullif(sum({m}_count), 0), sum({m}_count)"
            for m, _ in BUCKET_METRICS
        )
        samples = "sum(samples)"
    sql = f"""
        SELECT {start} AS start, {samples}, {aggregates}
        FROM {source} org_id = :org AND machine_id = :machine AND ts >= :since AND ts < :until
        GROUP BY {start} ORDER BY {start}
    """
    params = {"org": org_id, "machine": machine_id, "since": since, "until": until}
    return conn.execute(text(sql), params).all()


def delete_machine(conn: Connection, *, org_id: int, machine_id: str) -> None:
    """Its buckets; called in the transaction that deletes its samples."""
    conn.execute(
        text("DELETE FROM history_bucket WHERE org_id = :org AND machine_id = :machine"),
        {"org": org_id, "machine": machine_id},
    )
    _clamp_position(conn)


def _clamp_position(conn: Connection) -> None:
    """After samples are deleted: SQLite gives a new row the largest id + 1, so once the newest
    samples are gone it hands out ids the rollup has passed. Brought back to the newest id left (in
    the deleting transaction, before any insert), the position never skips a sample. (PostgreSQL's
    sequence never hands an id out twice.)"""
    if conn.dialect.name != "sqlite":
        return
    conn.execute(
        text(
            "UPDATE history_rollup SET done_id = min(done_id, (SELECT coalesce(max(id), 0) FROM sample)), "
            "seen_id = min(seen_id, (SELECT coalesce(max(id), 0) FROM sample)) WHERE id = 1"
        )
    )
