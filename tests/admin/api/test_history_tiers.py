"""A year of history: raw samples, 5-minute and hourly buckets rolled up by the real server in the
background, read through GET /api/fleet/machine/history?range=... on both databases.

Samples reach the server as agents send them: reports whose own `timestamp` places them in the past
(a report that waited in the agent's queue), up to the week the server trusts such a timestamp.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import UTC, datetime

import psycopg
import pytest

from tests.helpers.api import Org, sample_report
from tests.helpers.servers import ServerProcess

HISTORY = "/api/fleet/machine/history"
ROLLUP = {"history_rollup_interval_seconds": 0.3}  # the background job runs often here
WAIT_SECONDS = 60.0  # an upper bound for a loaded machine, not an expectation


def agent_time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


def send(org: Org, machine_id: str, at: float, cpu: float | None, ram: float | None = 40.0, disk: float | None = 50.0):
    report = sample_report(cpu_percent=cpu, ram_percent=ram, disk_percent=disk, timestamp=agent_time(at))
    resp = org.report(machine_id, report)
    assert resp.status_code == 200, resp.text


def chart(org: Org, machine_id: str, range_name: str) -> dict:
    resp = org.get(HISTORY, params={"machine_id": machine_id, "range": range_name})
    assert resp.status_code == 200, resp.text
    return resp.json()


def chart_when(org: Org, machine_id: str, range_name: str, done) -> dict:
    """The chart once `done(chart)` holds: the rollup runs in the background."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        answer = chart(org, machine_id, range_name)
        if done(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def query(server: ServerProcess, sql: str) -> list[tuple]:
    """`sql` run on the server's own database (PostgreSQL when it has a URL, else its SQLite file)."""
    url = server.env.get("DASHFLEET_DATABASE_URL")
    if url:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            cursor = conn.execute(sql)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
    with sqlite3.connect(server.workdir / "data" / "dashfleet.db", timeout=30) as conn:
        return conn.execute(sql).fetchall()


def bucket_rows(server: ServerProcess) -> list[tuple]:
    """Every stored bucket, straight from the server's database."""
    return query(server, "SELECT * FROM history_bucket ORDER BY org_id, machine_id, width, ts")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def rolling_server(request, module_server_factory) -> ServerProcess:
    return module_server_factory(request.param, **ROLLUP)


def test_buckets_keep_min_max_mean_and_count_and_gaps_stay_gaps(rolling_server):
    org = rolling_server.org()
    hour = (time.time() // 3600 - 72) * 3600  # three days ago, on the hour: past the raw tier
    # The 5-minute bucket at `hour`: a peak, and a CPU the agent could not read (no reading, no 0).
    send(org, "pc-1", hour + 10, cpu=10.0, ram=40.0)
    send(org, "pc-1", hour + 70, cpu=95.0, ram=50.0)
    send(org, "pc-1", hour + 130, cpu=None, ram=60.0)
    send(org, "pc-1", hour + 190, cpu=20.0, ram=70.0)
    send(org, "pc-1", hour + 400, cpu=30.0, ram=80.0)  # the next 5-minute bucket
    send(org, "pc-1", hour + 3 * 3600 + 10, cpu=50.0, disk=None)  # after two silent hours
    send(org, "pc-2", hour + 70, cpu=99.0)  # another machine's peak is not pc-1's

    week = chart_when(org, "pc-1", "week", lambda c: sum(b["samples"] for b in c["buckets"]) == 6)
    assert (week["tier"], week["bucket_seconds"]) == ("5m", 900)
    first, last = week["buckets"]  # nothing for the silent hours: a gap, not zeros
    assert (first["ts"], first["samples"]) == (hour, 5)
    assert (first["cpu_min"], first["cpu_max"], first["cpu_count"]) == (10.0, 95.0, 4)
    assert first["cpu_percent"] == pytest.approx((10 + 95 + 20 + 30) / 4)  # the null lowers no mean
    assert (first["ram_min"], first["ram_max"], first["ram_count"]) == (40.0, 80.0, 5)
    assert first["ram_percent"] == pytest.approx(60.0)
    assert (last["ts"], last["samples"], last["cpu_max"]) == (hour + 3 * 3600, 1, 50.0)
    assert (last["disk_percent"], last["disk_min"], last["disk_max"], last["disk_count"]) == (None, None, None, 0)
    assert first["score_count"] == 5 and first["score_min"] <= first["score"] <= first["score_max"]

    # The hourly tier: the same figures from the 5-minute buckets (the mean weighted by readings).
    month = chart(org, "pc-1", "month")
    assert (month["tier"], month["bucket_seconds"]) == ("1h", 3600)
    assert [b["ts"] for b in month["buckets"]] == [hour, hour + 3 * 3600]
    assert {k: month["buckets"][0][k] for k in first} == pytest.approx(first)
    year = chart(org, "pc-1", "year")
    assert year["tier"] == "1h" and year["bucket_seconds"] == 43200
    assert max(b["cpu_max"] for b in year["buckets"]) == 95.0  # a year on, the peak is still there
    assert sum(b["samples"] for b in year["buckets"]) == 6
    # The raw tier answers the recent ranges; none of these samples is that recent.
    for recent in ("hour", "day"):
        assert (chart(org, "pc-1", recent)["tier"], chart(org, "pc-1", recent)["buckets"]) == ("raw", [])


def test_recent_samples_are_charted_from_the_raw_tier(rolling_server):
    org = rolling_server.org()
    now = time.time()
    start = (now - 600) // 120 * 120  # one 2-minute bucket of the day, two 1-minute ones of the hour
    send(org, "pc-1", start + 10, cpu=10.0)
    send(org, "pc-1", start + 70, cpu=90.0)
    day = chart(org, "pc-1", "day")
    assert (day["tier"], day["bucket_seconds"]) == ("raw", 120)
    (bucket,) = [b for b in day["buckets"] if b["samples"]]
    assert (bucket["cpu_min"], bucket["cpu_max"], bucket["cpu_count"], bucket["cpu_percent"]) == (10.0, 90.0, 2, 50.0)
    assert day["since"] <= now - 86400 and day["until"] >= now
    hour = chart(org, "pc-1", "hour")
    assert hour["bucket_seconds"] == 60 and [b["cpu_max"] for b in hour["buckets"]] == [10.0, 90.0]


def test_a_rollup_run_again_gives_the_same_rows(rolling_server):
    org = rolling_server.org()
    hour = (time.time() // 3600 - 30) * 3600  # within the raw tier: every bucket is computed again
    for n, cpu in enumerate((5.0, 75.0, 15.0, None)):
        send(org, "pc-1", hour + 100 * n, cpu=cpu)
    chart_when(org, "pc-1", "month", lambda c: sum(b["samples"] for b in c["buckets"]) == 4)
    _wait_until_rolled_up(rolling_server)
    before = bucket_rows(rolling_server)
    assert any(row[0] != 0 and row[4] == 4 for row in before)
    # Everything is rolled up again from the first sample, as after a crash between two steps.
    query(rolling_server, "UPDATE history_rollup SET done_id = 0, seen_id = 0, seen_at = 0")
    _wait_until_rolled_up(rolling_server)
    assert bucket_rows(rolling_server) == before


def _wait_until_rolled_up(server: ServerProcess) -> None:
    """Until the rollup has caught up with every sample (its position is the newest id)."""
    sql = "SELECT (SELECT done_id FROM history_rollup) >= (SELECT coalesce(max(id), 0) FROM sample)"
    deadline = time.monotonic() + WAIT_SECONDS
    while not query(server, sql)[0][0]:
        assert time.monotonic() < deadline, "the rollup did not catch up"
        time.sleep(0.2)


def test_bad_ranges_are_refused_and_other_organisations_machines_are_not_found(rolling_server, contract):
    org, other = rolling_server.org(), rolling_server.org()
    send(org, "pc-1", time.time() - 60, cpu=42.0)
    send(other, "pc-other", time.time() - 60, cpu=42.0)
    for params in (
        {"range": "decade"},
        {"range": ""},
        {"range": "Week"},
        {"range": "week", "hours": 5},
        {"range": "week", "bucket_seconds": 300},
        {"range": "week", "limit": 10},
        {"range": "week", "offset": 0},
    ):
        body = contract.error(org.get(HISTORY, params={"machine_id": "pc-1", **params}), 422)
        if "hours" in params or "limit" in params:
            assert "range" in body["error"], body
    # The scope `read` is needed: an agent key (or an enrol key) cannot read the history.
    for scope in ("agent", "enroll"):
        key = rolling_server.make_key(org.name, scope)["api_key"]
        contract.error(org.get(HISTORY, params={"machine_id": "pc-1", "range": "day"}, key=key), 403)
    contract.error(org.get(HISTORY, params={"machine_id": "pc-other", "range": "day"}), 404)
    contract.error(other.get(HISTORY, params={"machine_id": "pc-1", "range": "year"}), 404)
    contract.error(org.get(HISTORY, params={"machine_id": "never-was", "range": "year"}), 404)
    # The same machine id in two organisations: each sees its own.
    send(other, "pc-1", time.time() - 60, cpu=7.0)
    assert [b["cpu_max"] for b in chart(other, "pc-1", "hour")["buckets"]] == [7.0]
    assert [b["cpu_max"] for b in chart(org, "pc-1", "hour")["buckets"]] == [42.0]
    # The raw-sample forms answer as before.
    samples = org.get(HISTORY, params={"machine_id": "pc-1", "hours": 1}).json()
    assert [s["cpu_percent"] for s in samples["samples"]] == [42.0] and samples["next_offset"] is None


def test_each_tier_keeps_what_its_retention_says_and_the_range_picks_the_tier(server_factory, backend):
    server = server_factory(
        backend,
        history_raw_retention_hours=1,
        history_5m_retention_days=1,
        history_1h_retention_days=3,
        **ROLLUP,
    )
    org = server.org()
    now = time.time()
    ages = {"2.5 days": 2.5 * 86400, "12 hours": 12 * 3600, "10 minutes": 600}
    for n, age in enumerate(ages.values()):
        send(org, "pc-1", now - age, cpu=10.0 * (n + 1))
    # The hourly tier holds all three; the 5-minute one the last day; raw samples the last hour.
    month = chart_when(org, "pc-1", "month", lambda c: sum(b["samples"] for b in c["buckets"]) == 3)
    assert month["tier"] == "1h"
    day = chart_when(org, "pc-1", "day", lambda c: sum(b["samples"] for b in c["buckets"]) == 2)
    assert day["tier"] == "5m" and [b["cpu_max"] for b in day["buckets"]] == [20.0, 30.0]
    assert chart(org, "pc-1", "week")["tier"] == "1h"  # beyond the 5-minute tier's day
    raw = chart_when(org, "pc-1", "hour", lambda c: sum(b["samples"] for b in c["buckets"]) == 1)
    assert raw["tier"] == "raw" and [b["cpu_max"] for b in raw["buckets"]] == [30.0]
    _wait_until_rolled_up(server)
    samples = chart_when(org, "pc-1", "hour", lambda c: True)  # the pruning follows the rollup
    assert [b["cpu_max"] for b in samples["buckets"]] == [30.0]
    deadline = time.monotonic() + WAIT_SECONDS
    while len(org.get(HISTORY, params={"machine_id": "pc-1", "hours": 168}).json()["samples"]) > 1:
        assert time.monotonic() < deadline, "raw samples past their retention were not pruned"
        time.sleep(0.2)
    widths = sorted({(row[2], row[3]) for row in bucket_rows(server)})
    five = [ts for width, ts in widths if width == 300]
    assert len(five) == 2 and min(five) > now - 86400  # the 5-minute bucket of 2.5 days ago is gone
    assert len([ts for width, ts in widths if width == 3600]) == 3


@pytest.mark.postgres
def test_two_server_processes_roll_up_each_sample_once(server_factory, postgres):
    url = postgres.create()
    # Two processes of one deployment: one database (the factory's "postgres" makes one each).
    first = server_factory("sqlite", DASHFLEET_DATABASE_URL=url, **ROLLUP)
    second = server_factory("sqlite", DASHFLEET_DATABASE_URL=url, **ROLLUP)
    org = first.org()
    hour = (time.time() // 3600 - 60) * 3600
    # While something else holds the rollup's lock, neither process rolls up.
    holder = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    holder.execute("SELECT pg_advisory_lock(727301, 0)")
    count = 40
    for n in range(count):
        send(org.via(first if n % 2 else second), "pc-1", hour + 60 * n, cpu=float(n))
    time.sleep(2)  # several rollup periods of both processes
    assert chart(org, "pc-1", "week")["buckets"] == []
    holder.execute("SELECT pg_advisory_unlock(727301, 0)")
    holder.close()
    week = chart_when(org, "pc-1", "week", lambda c: sum(b["samples"] for b in c["buckets"]) == count)
    assert max(b["cpu_max"] for b in week["buckets"]) == count - 1
    _wait_until_rolled_up(first)
    rolled = [int(n) for server in (first, second) for n in re.findall(r"history rollup: (\d+) samples", server.log())]
    assert sum(rolled) == count, rolled  # each sample by one process, once
