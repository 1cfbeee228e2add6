"""History tiers (docs/history.md): what the rollup, the year chart and the storage cost.

1. Rollup: a migrated database (SQLite by default) holds 10,000 machines' raw samples (one a
   minute, inserted straight into the table); `HistoryService.roll_up` then rolls them into
   5-minute and hourly buckets, as the server's background job does when it catches up, and once
   more for a single minute of the fleet (the job's usual run). By default 3 hours of the fleet
   (1.8 million samples) and the day projected from it (the rollup goes in equal chunks of sample
   ids); `--hours 24` measures the whole day (14.4 million samples: about 15 minutes here, most of
   it inserting them).
2. The year chart: one machine with a year of hourly buckets beside that fleet; the machine page's
   query (`HistoryService.chart(range="year")`), timed in process and through the real server
   (`GET /api/fleet/machine/history?range=year`, the same database).
3. Size: one machine's history in steady state (48 h of samples, 14 days of 5-minute buckets,
   400 days of hourly ones) in a SQLite database of its own, measured per table after VACUUM
   (not with --postgres).

    .venv/bin/python bench/history_rollup.py [--machines 10000] [--hours 3] [--interval 60] [--postgres]

A few minutes with the defaults on SQLite.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _servers import REPO_ROOT, admin_cli, fresh_postgres_database, postgres_reason_unavailable, running

sys.path.insert(0, str(REPO_ROOT))
from sqlalchemy import text

from admin.core.config import Settings
from admin.core.db import migrate
from admin.services.context import AppServices

YEAR_CHART_TARGET_MS = 300
DAY = 86400
SAMPLE_COLUMNS = ("org_id", "machine_id", "ts", "cpu_percent", "ram_percent", "disk_percent", "health_score")
METRICS = ("cpu", "ram", "disk", "score")
BUCKET_COLUMNS = ("org_id", "machine_id", "width", "ts", "samples") + tuple(
    f"{m}_{part}" for m in METRICS for part in ("min", "max", "avg", "count")
)


def samples(org_id: int, machines: int, start: float, seconds: float, interval: float):
    """Every machine's samples from `start`, in time order (as they arrive), values varying."""
    rnd = random.Random(7)
    values = [round(rnd.uniform(0, 100), 1) for _ in range(997)]
    for step in range(int(seconds // interval)):
        at = start + step * interval
        for n in range(machines):
            v = values[(n * 31 + step) % 997]
            yield (org_id, f"bench-{n:05d}", at + n % 50 / 10, v, 40.0, 55.0, 100 - v / 2)


def bucket(org_id: int, machine: str, width: int, ts: int, low: float, high: float, mean: float) -> tuple:
    return (org_id, machine, width, ts, 5) + (low, high, mean, 5) * len(METRICS)


def insert(services: AppServices, table: str, columns: tuple[str, ...], rows, batch: int = 100_000) -> int:
    """Rows straight through the driver (the arrangement, not what is measured)."""
    marker = "%s" if services.engine.dialect.name == "postgresql" else "?"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"
    done = 0
    raw = services.engine.raw_connection()
    try:
        cursor = raw.cursor()
        while chunk := list(itertools.islice(rows, batch)):
            cursor.executemany(sql, chunk)
            raw.commit()
            done += len(chunk)
    finally:
        raw.close()
    return done


def year_of_hours(org_id: int, machine: str, now: float):
    for hour in range(365 * 24):
        yield bucket(org_id, machine, 3600, int(now // 3600 - hour) * 3600, 5.0, 95.0, 40.0)


def build(data_dir: Path, url: str) -> AppServices:
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=url)
    migrate(settings)
    return AppServices.build(settings)


def rollup_figures(services: AppServices, org_id: int, machines: int, interval: float, hours: float) -> None:
    now = time.time()
    started = time.perf_counter()
    span = hours * 3600
    count = insert(services, "sample", SAMPLE_COLUMNS, samples(org_id, machines, now - span - 120, span, interval))
    print(
        f"inserted {count:,} samples ({machines:,} machines, one per {interval:g} s, {hours:g} h) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    started = time.perf_counter()
    done = services.history.roll_up(now=now, settle=0)
    took = time.perf_counter() - started
    assert done is not None
    print(f"rollup of {hours:g} h: {took:.1f} s ({done.samples / took:,.0f} samples/s), {done.buckets:,} bucket writes")
    if hours != 24:  # linear in samples: chunks of 10,000 ids, each costing the same
        print(f"  projected for a day of these machines: {took * 24 / hours:.0f} s (run --hours 24 to measure it)")
    insert(services, "sample", SAMPLE_COLUMNS, samples(org_id, machines, now - 60, interval, interval))
    started = time.perf_counter()
    minute = services.history.roll_up(now=now + 1, settle=0)
    assert minute is not None
    print(
        f"rollup of one minute of the fleet ({minute.samples:,} samples, the job's usual run): "
        f"{(time.perf_counter() - started) * 1000:.0f} ms"
    )


def year_chart(services: AppServices, org_id: int, repeats: int) -> float:
    with services.engine.begin() as conn:  # the machine's row: the chart is only for a known machine
        conn.execute(
            text(
                "INSERT INTO machine (org_id, machine_id, last_seen, report, system) VALUES (:org, :id, :at, '{}', '{}')"
            ),
            {"org": org_id, "id": "year-machine", "at": time.time()},
        )
    insert(services, "history_bucket", BUCKET_COLUMNS, year_of_hours(org_id, "year-machine", time.time()))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = services.history.chart(org_id=org_id, machine_id="year-machine", range_name="year")
        times.append((time.perf_counter() - started) * 1000)
    print(
        f"year chart in process ({out.tier} tier, {len(out.buckets)} points from "
        f"{365 * 24:,} hourly buckets): median {statistics.median(times):.1f} ms, "
        f"max {max(times):.1f} ms"
    )
    return statistics.median(times)


def year_chart_over_http(workdir: Path, env: dict[str, str], org_name: str, repeats: int) -> float:
    key = admin_cli(workdir, env, "key", "create", "--org", org_name, "--scope", "read")["api_key"]
    cmd = [sys.executable, "-m", "admin", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    with running("dashfleet", cmd, workdir, env) as server:
        headers = {"Authorization": f"Bearer {key}"}
        params = {"machine_id": "year-machine", "range": "year"}
        times = []
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
            for _ in range(repeats):
                started = time.perf_counter()
                resp = client.get("/api/fleet/machine/history", params=params)
                times.append((time.perf_counter() - started) * 1000)
                resp.raise_for_status()
    print(
        f"year chart over HTTP (GET /api/fleet/machine/history?range=year, {len(resp.content):,} bytes): "
        f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms"
    )
    return statistics.median(times)


def steady_state_size(interval: float) -> None:
    """One machine's history at its fullest: 48 h of samples, 14 days of 5-minute and 400 days of
    hourly buckets (filled directly: its size, not its rollup, is measured), over 20 machines."""
    machines = 20
    with tempfile.TemporaryDirectory() as tmp:
        services = build(Path(tmp), "")
        org, _ = services.accounts.create_org("size")
        now = time.time()
        insert(services, "sample", SAMPLE_COLUMNS, samples(org.id, machines, now - 2 * DAY, 2 * DAY, interval))

        def buckets(width: int, days: int):
            for n in range(machines):
                for k in range(days * DAY // width):
                    ts = int(now // width - k) * width
                    yield bucket(org.id, f"bench-{n:05d}", width, ts, 3.0 + k % 7, 91.5 - k % 5, 41.37 + k % 11 / 3)

        insert(services, "history_bucket", BUCKET_COLUMNS, buckets(300, 14))
        insert(services, "history_bucket", BUCKET_COLUMNS, buckets(3600, 400))
        sizes = table_sizes(services)
        services.engine.dispose()
    sample_bytes, sample_rows = sizes["sample"]
    bucket_bytes, bucket_rows = sizes["history_bucket"]
    per_bucket = bucket_bytes / bucket_rows
    per_machine = (sample_bytes + bucket_bytes) / machines
    print(
        f"size per machine in steady state (48 h of samples at one per {interval:g} s, 14 d of 5-minute and "
        f"400 d of hourly buckets): {per_machine / 1e6:.2f} MB ({sample_bytes / sample_rows:.0f} B a sample, "
        f"{per_bucket:.0f} B a bucket, indexes included); a year of hourly buckets: "
        f"{per_bucket * 8760 / 1e6:.2f} MB; 10,000 machines: {per_machine * 10_000 / 1e9:.1f} GB"
    )


def table_sizes(services: AppServices) -> dict[str, tuple[float, int]]:
    """(bytes with indexes, rows) of the two history tables."""
    tables = ("sample", "history_bucket")
    with services.engine.connect() as conn:
        rows = {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables}
    raw = services.engine.raw_connection()
    try:
        raw.execute("VACUUM")
        # dbstat: each table's and index's pages (the sample table has two indexes of its own).
        pages = raw.execute(
            "SELECT CASE WHEN name LIKE '%sample%' THEN 'sample' ELSE 'history_bucket' END, sum(pgsize) "
            "FROM dbstat WHERE name LIKE '%sample%' OR name LIKE '%history_bucket%' GROUP BY 1"
        ).fetchall()
    finally:
        raw.close()
    return {name: (float(size), rows[name]) for name, size in pages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between a machine's samples")
    parser.add_argument("--hours", type=float, default=3, help="how much of the fleet's history to roll up")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL on 127.0.0.1 instead of SQLite")
    args = parser.parse_args()
    if args.postgres and (reason := postgres_reason_unavailable()):
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory(prefix="dashfleet-history-") as tmp:
        workdir = Path(tmp)
        if args.postgres:
            with fresh_postgres_database() as url:
                run(workdir, url, args)
        else:
            run(workdir, None, args)


def run(workdir: Path, url: str | None, args: argparse.Namespace) -> None:
    env = {"DASHFLEET_DATABASE_URL": url} if url else {}
    org = admin_cli(workdir, env, "org", "create", "bench")
    services = build(workdir / "data", url or "")  # the server's own database (./data under workdir)
    rollup_figures(services, org["org_id"], args.machines, args.interval, args.hours)
    in_process = year_chart(services, org["org_id"], args.repeats)
    services.engine.dispose()
    over_http = year_chart_over_http(workdir, env, "bench", args.repeats)
    if url is None:  # measured on a database of its own: SQLite only (the PostgreSQL one is the run's)
        steady_state_size(args.interval)
    verdict = "PASS" if max(in_process, over_http) < YEAR_CHART_TARGET_MS else "FAIL"
    print(f"- {verdict}: a year chart for one machine under {YEAR_CHART_TARGET_MS} ms (median, over HTTP)")


if __name__ == "__main__":
    main()
