"""GET /api/fleet/metrics for an organisation of 10,000 machines: how long a scrape takes.

A real server (`python -m admin serve`, SQLite, pinned to core 0) with the answer cache off
(DASHFLEET_FLEET_METRICS_CACHE_SECONDS=0, so every scrape renders), 10,000 machines that each sent
one report; then sequential scrapes from core 1. With the cache on (the default, 5 s) scrapes within
the window cost a dictionary lookup; the figure here is the uncached worst case. For scale, the same
run times GET /api/fleet?limit=1000 (the JSON listing's largest page). Besides wall-clock latency
it prints the server process's CPU time per request (from /proc), which a busy machine disturbs far
less than the latency.

    .venv/bin/python bench/fleet_metrics.py [--machines 10000] [--scrapes 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx
from _loadgen import post_each, process_cpu_seconds
from _servers import NO_LIMITS_ENV, REPO_ROOT, running_dashfleet

sys.path.insert(0, str(REPO_ROOT))
from common.constants import PATH_REPORT

TARGET_MS = 200


def timed_gets(
    client: httpx.Client, pid: int, path: str, params: dict, count: int
) -> tuple[list[float], float, httpx.Response]:
    """Sorted latencies (ms), the server's CPU ms per request, and the last answer."""
    latencies = []
    cpu_before = process_cpu_seconds(pid)
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path, params=params)
        latencies.append((time.perf_counter() - started) * 1e3)
        response.raise_for_status()
    cpu_ms = (process_cpu_seconds(pid) - cpu_before) * 1e3 / count
    return sorted(latencies), cpu_ms, response


def summary(latencies: list[float], cpu_ms: float) -> str:
    p95 = latencies[min(len(latencies) - 1, round(len(latencies) * 0.95))]
    return (
        f"p50 {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms; "
        f"server CPU {cpu_ms:.0f} ms per request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    with running_dashfleet("fleet-metrics", {"DASHFLEET_FLEET_METRICS_CACHE_SECONDS": "0", **NO_LIMITS_ENV}) as (
        server,
        key,
    ):
        url = server.base_url + PATH_REPORT
        statuses = post_each(url, "report", args.machines, key)
        if set(statuses) != {200}:
            raise SystemExit(f"filling the fleet: {statuses}")
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
            pid = server.proc.pid
            scrapes, scrape_cpu, answer = timed_gets(client, pid, "/api/fleet/metrics", {}, args.scrapes)
            up = answer.text.count("\ndashfleet_machine_up{")
            listing, listing_cpu, _ = timed_gets(client, pid, "/api/fleet", {"limit": 1000}, args.scrapes)
    size = len(answer.content) / 1e6
    print(f"GET /api/fleet/metrics, {up:,} machines, {size:.1f} MB, uncached: {summary(scrapes, scrape_cpu)}")
    print(f"GET /api/fleet?limit=1000 (1,000 of them, JSON), same server: {summary(listing, listing_cpu)}")
    verdict = "PASS" if statistics.median(scrapes) < TARGET_MS else "FAIL"
    print(f"- {verdict}: a scrape of {up:,} machines under {TARGET_MS} ms (median)")


if __name__ == "__main__":
    main()
