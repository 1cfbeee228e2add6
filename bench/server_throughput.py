"""Server throughput (issue 3, "Speed"): the real server against the prototype and a bare FastAPI route.

Each server is a real process pinned to core 0; the load (wrk, else an async httpx generator) runs on
core 1 with 16 connections, ~10 s per run, reports for 100 and for 10,000 distinct machines, pings
for 10,000. The real server is started as a user starts it (`python -m admin serve` in a fresh
working directory, its organisation made with `python -m admin org create`), on SQLite and, when it
is reachable, on PostgreSQL. Prints a Markdown table for docs/benchmarks.md and writes the raw
figures to bench/results/server_throughput.json.

    .venv/bin/python bench/server_throughput.py [--seconds 10] [--only sqlite --only bare ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _loadgen import LoadResult, machine_id, post_each, report_body, run_load, wrk_available
from _servers import (
    BENCH_DIR,
    LOAD_CPU,
    NO_LIMITS_ENV,
    REPO_ROOT,
    fresh_postgres_database,
    postgres_reason_unavailable,
    running,
    running_dashfleet,
    temp_workdir,
)

sys.path.insert(0, str(REPO_ROOT))
from common.constants import PATH_FLEET, PATH_PING, PATH_REPORT

SMALL_FLEET, LARGE_FLEET = 100, 10_000
WARM_UP_SECONDS = 2.0
FLEET_LIST_MAX_SECONDS = 20.0
CONNECTIONS = 16

# 100 machines cannot send 2,000 reports a second within the per-machine limit (120 a minute): the
# server is asked to count but not refuse during the benchmark (the limiter's cost stays measured).
# Settings the server ignores until it has them; refused requests show as errors in the results.
# The 10,000 machines are new at the first run: the rate of new machine ids is raised likewise.
BENCH_SERVER_ENV = NO_LIMITS_ENV

# The targets, checked against each DashFleet run.
TARGET_REPORTS_PER_S = 2_000
TARGET_P99_MS = 50.0
TARGET_SHARE_OF_BARE = 0.60
TARGET_FLATNESS = 0.10
TARGET_PINGS_PER_S = 3_000
TARGET_FLEET_LIST_MS = 50.0


@dataclass
class Figures:
    server: str
    reports_small: LoadResult | None = None
    reports_large: LoadResult | None = None
    pings: LoadResult | None = None
    fleet_list_ms: tuple[float, float] | None = None  # p50, p99 of sequential GETs
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        def load(r: LoadResult | None):
            return r.as_dict() if r else None

        return {
            "server": self.server,
            "reports_small": load(self.reports_small),
            "reports_large": load(self.reports_large),
            "pings": load(self.pings),
            "fleet_list_ms": self.fleet_list_ms,
            "notes": self.notes,
        }


class Bench:
    def __init__(self, seconds: float, fleet_requests: int, repeat: int) -> None:
        self.seconds, self.fleet_requests, self.repeat = seconds, fleet_requests, repeat

    def warm_up(self, server, path: str, kind: str, machines: int, key: str) -> None:
        run_load(
            server.base_url, path, kind, machines, key, connections=CONNECTIONS, seconds=WARM_UP_SECONDS, cpu=LOAD_CPU
        )

    def load(self, server, path: str, kind: str, machines: int, key: str) -> LoadResult:
        """The best of `repeat` runs (error-free first): on a shared machine, the least disturbed."""
        runs = [
            run_load(
                server.base_url,
                path,
                kind,
                machines,
                key,
                connections=CONNECTIONS,
                seconds=self.seconds,
                cpu=LOAD_CPU,
                server_pid=server.proc.pid,
            )
            for _ in range(self.repeat)
        ]
        best = max(runs, key=lambda r: (r.errors == 0, r.rps))  # a refused request is quick, not better
        share = best.server_core_share
        print(
            f"  {server.name}: {kind} x {machines} machines: {best.rps:,.0f}/s, p99 {best.p99_ms:.1f} ms"
            + (f", server had {share:.0%} of its core" if share else "")
            + (f", {best.errors} errors" if best.errors else "")
            + (f" (best of {', '.join(f'{r.rps:,.0f}' for r in runs)})" if len(runs) > 1 else ""),
            flush=True,
        )
        return best

    def fleet_list(self, server, key: str, expected_count: int, fig: Figures) -> None:
        """p50/p99 of sequential GET /api/fleet?limit=100 over one keep-alive connection.

        At most fleet_requests requests or FLEET_LIST_MAX_SECONDS (the prototype takes ~0.3 s each)."""
        latencies = []
        deadline = time.monotonic() + FLEET_LIST_MAX_SECONDS
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            while len(latencies) < self.fleet_requests and (len(latencies) < 10 or time.monotonic() < deadline):
                started = time.perf_counter()
                response = client.get(PATH_FLEET, params={"limit": 100})
                latencies.append((time.perf_counter() - started) * 1e3)
                if response.status_code != 200:
                    fig.notes.append(f"GET {PATH_FLEET}: HTTP {response.status_code} {response.text[:200]}")
                    return
        count = response.json().get("count")
        if count != expected_count:
            fig.notes.append(f"GET {PATH_FLEET} counted {count} machines, expected {expected_count}")
        cuts = statistics.quantiles(latencies, n=100)
        fig.fleet_list_ms = (cuts[49], cuts[98])
        if len(latencies) < self.fleet_requests:
            fig.notes.append(f"listing latency over {len(latencies)} requests (time cap)")
        print(
            f"  {server.name}: GET {PATH_FLEET}?limit=100 at {count} machines, {len(latencies)} requests: "
            f"p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms",
            flush=True,
        )

    def prototype(self) -> Figures:
        from prototype_server import write_fleet_file  # needs flask: the `bench` extra

        fig = Figures("prototype design (Flask, JSON file)")
        key = "api_" + secrets.token_urlsafe(32)
        with temp_workdir("prototype") as workdir:
            data_file = workdir / "fleet.json"
            cmd = [
                sys.executable,
                str(BENCH_DIR / "prototype_server.py"),
                "--port",
                "{port}",
                "--api-key",
                key,
                "--data-file",
                str(data_file),
            ]
            with running("prototype", cmd, workdir) as server:
                self.warm_up(server, PATH_REPORT, "report", SMALL_FLEET, key)
                fig.reports_small = self.load(server, PATH_REPORT, "report", SMALL_FLEET, key)
            # It writes ~5 reports/s at 10,000 machines, so a run cannot fill its fleet: start it on
            # the file it would have written by then.
            write_fleet_file(
                data_file, {machine_id(i): report_body(machine_id(i))["report"] for i in range(LARGE_FLEET)}
            )
            with running("prototype", cmd, workdir) as server:
                # Listing first: after a load run its threads still work off queued reports.
                self.fleet_list(server, key, LARGE_FLEET, fig)
                fig.reports_large = self.load(server, PATH_REPORT, "report", LARGE_FLEET, key)
        fig.notes.append("no heartbeat endpoint (one of the prototype's faults); its listing ignores limit")
        return fig

    def bare_fastapi(self) -> Figures:
        fig = Figures("bare FastAPI (validation only)")
        with (
            temp_workdir("bare") as workdir,
            running(
                "bare-fastapi", [sys.executable, str(BENCH_DIR / "bare_fastapi.py"), "--port", "{port}"], workdir
            ) as server,
        ):
            self.warm_up(server, PATH_REPORT, "report", LARGE_FLEET, "none")
            fig.reports_small = self.load(server, PATH_REPORT, "report", SMALL_FLEET, "none")
            fig.reports_large = self.load(server, PATH_REPORT, "report", LARGE_FLEET, "none")
            fig.pings = self.load(server, PATH_PING, "ping", LARGE_FLEET, "none")
        return fig

    def dashfleet(self, label: str, env: dict[str, str]) -> Figures:
        fig = Figures(label)
        with running_dashfleet(label.split()[-1].strip("()").lower(), env) as (server, key):
            self.warm_up(server, PATH_REPORT, "report", SMALL_FLEET, key)
            fig.reports_small = self.load(server, PATH_REPORT, "report", SMALL_FLEET, key)
            # Every one of the 10,000 machines exists before the large run, whatever its speed.
            statuses = post_each(server.base_url + PATH_REPORT, "report", LARGE_FLEET, key)
            if set(statuses) != {200}:
                fig.notes.append(f"filling the fleet: HTTP statuses {statuses}")
            fig.reports_large = self.load(server, PATH_REPORT, "report", LARGE_FLEET, key)
            fig.pings = self.load(server, PATH_PING, "ping", LARGE_FLEET, key)
            self.fleet_list(server, key, LARGE_FLEET, fig)
        return fig


# --- output -----------------------------------------------------------------------------------

LOADS = (
    ("reports_small", f"reports, {SMALL_FLEET:,} machines"),
    ("reports_large", f"reports, {LARGE_FLEET:,} machines"),
    ("pings", f"pings, {LARGE_FLEET:,} machines"),
)


def _ratio(a: LoadResult | None, b: LoadResult | None) -> float | None:
    return a.rps / b.rps if a and b and b.rps else None


def markdown_table(results: list[Figures]) -> str:
    rows = [
        "| server | load | req/s | p50 ms | p99 ms | errors | server's share of its core | req per server CPU-second |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in results:
        for attr, label in LOADS:
            r: LoadResult | None = getattr(f, attr)
            if r is None:
                continue
            share = f"{r.server_core_share:.0%}" if r.server_core_share else "n/a"
            per_cpu = f"{r.rps_per_cpu:,.0f}" if r.rps_per_cpu else "n/a"
            rows.append(
                f"| {f.server} | {label} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} "
                f"| {share} | {per_cpu} |"
            )
        if f.fleet_list_ms:
            rows.append(
                f"| {f.server} | GET /api/fleet?limit=100, {LARGE_FLEET:,} machines, sequential | "
                f"| {f.fleet_list_ms[0]:.1f} | {f.fleet_list_ms[1]:.1f} | | | |"
            )
    return "\n".join(rows)


def target_lines(f: Figures, bare: Figures | None, proto: Figures | None) -> list[str]:
    """The issue's targets for one DashFleet run, judged on what was measured (wall-clock rates)."""
    large, small, pings = f.reports_large, f.reports_small, f.pings
    checks = []

    def contended(r: LoadResult) -> str:
        share = r.server_core_share
        if share is None or share >= 0.9:
            return ""
        return f" [the server had only {share:.0%} of its core; {r.rps_per_cpu:,.0f} per server CPU-second]"

    if large:
        checks.append(
            (
                f">= {TARGET_REPORTS_PER_S:,} reports/s at {LARGE_FLEET:,} machines, p99 < {TARGET_P99_MS:.0f} ms",
                large.rps >= TARGET_REPORTS_PER_S and large.p99_ms < TARGET_P99_MS and not large.errors,
                f"{large.rps:,.0f}/s, p99 {large.p99_ms:.1f} ms, {large.errors} errors{contended(large)}",
            )
        )
    bare_large = bare.reports_large if bare else None
    share = _ratio(large, bare_large)
    if share is not None:
        # Judged per server CPU-second when known: on a busy machine the wall-clock ratio mostly says
        # which server got more of its core (DashFleet's writer thread wins it a larger share).
        per_cpu = large.rps_per_cpu / bare_large.rps_per_cpu if large.rps_per_cpu and bare_large.rps_per_cpu else None
        judged = per_cpu if per_cpu is not None else share
        checks.append(
            (
                f">= {TARGET_SHARE_OF_BARE:.0%} of bare FastAPI's rate",
                judged >= TARGET_SHARE_OF_BARE,
                (f"{per_cpu:.0%} per server CPU-second, " if per_cpu is not None else "") + f"{share:.0%} wall-clock",
            )
        )
    flat = _ratio(large, small)
    if flat is not None:
        checks.append(
            (
                f"{LARGE_FLEET:,} machines within {TARGET_FLATNESS:.0%} of {SMALL_FLEET}",
                abs(flat - 1) <= TARGET_FLATNESS and not small.errors,
                f"{flat:.2f}" + (f" ({small.errors} errors at {SMALL_FLEET} machines)" if small.errors else ""),
            )
        )
    if pings:
        checks.append(
            (
                f">= {TARGET_PINGS_PER_S:,} pings/s",
                pings.rps >= TARGET_PINGS_PER_S and not pings.errors,
                f"{pings.rps:,.0f}/s, {pings.errors} errors{contended(pings)}",
            )
        )
    if f.fleet_list_ms:
        checks.append(
            (
                f"GET /api/fleet?limit=100 at {LARGE_FLEET:,} machines < {TARGET_FLEET_LIST_MS:.0f} ms (p99)",
                f.fleet_list_ms[1] < TARGET_FLEET_LIST_MS,
                f"p50 {f.fleet_list_ms[0]:.1f} ms, p99 {f.fleet_list_ms[1]:.1f} ms",
            )
        )
    lines = [f"- {'PASS' if ok else 'FAIL'} {f.server}: {what}: {got}" for what, ok, got in checks]
    if proto:
        for mine, theirs, machines in (
            (small, proto.reports_small, SMALL_FLEET),
            (large, proto.reports_large, LARGE_FLEET),
        ):
            if mine and theirs and theirs.requests:
                lines.append(
                    f"- {f.server}: {mine.rps / theirs.rps:,.0f}x the prototype design's reports/s at {machines:,} machines"
                )
            elif mine and theirs:
                lines.append(
                    f"- {f.server}: the prototype design completed no report in {theirs.seconds:.0f} s at "
                    f"{machines:,} machines ({theirs.errors} timeouts or errors)"
                )
    return lines


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_description() -> dict:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    wrk = (
        subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split(" [")[0]
        if wrk_available()
        else None
    )
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_generator": wrk or "httpx (wrk not found)",
        "commit": commit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per load; the best counts (busy machines)")
    parser.add_argument("--fleet-requests", type=int, default=200, help="sequential GETs for the listing latency")
    parser.add_argument(
        "--only",
        action="append",
        choices=["prototype", "bare", "sqlite", "postgres"],
        help="run only these (repeatable); default: all, PostgreSQL when reachable",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the DashFleet server (e.g. a DASHFLEET_* setting)",
    )
    parser.add_argument(
        "--dashfleet-root",
        type=Path,
        default=REPO_ROOT,
        help="run the DashFleet server from this checkout (to compare a patch with main)",
    )
    args = parser.parse_args()
    chosen = set(args.only or ["prototype", "bare", "sqlite", "postgres"])
    server_env = {
        "PYTHONPATH": str(args.dashfleet_root.resolve()),
        **BENCH_SERVER_ENV,
        **dict(item.split("=", 1) for item in args.server_env),
    }
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 cores: the server on core 0, the load on core 1")
    os.sched_setaffinity(0, {int(LOAD_CPU)})  # this process (listing latency, seeding) stays off the server's core

    machine = machine_description()
    print(f"machine: {machine}", flush=True)
    load_before = _loadavg()
    bench = Bench(args.seconds, args.fleet_requests, args.repeat)
    proto = bare = None
    results: list[Figures] = []
    skipped: list[str] = []
    if "prototype" in chosen:
        proto = bench.prototype()
        results.append(proto)
    if "bare" in chosen:
        bare = bench.bare_fastapi()
        results.append(bare)
    if "sqlite" in chosen:
        results.append(bench.dashfleet("DashFleet (SQLite)", server_env))
    if "postgres" in chosen:
        reason = postgres_reason_unavailable()
        if reason:
            skipped.append(f"DashFleet (PostgreSQL) skipped: {reason}")
        else:
            with fresh_postgres_database() as url:
                results.append(bench.dashfleet("DashFleet (PostgreSQL)", {**server_env, "DASHFLEET_DATABASE_URL": url}))

    print()
    print(
        f"Machine: {machine['nproc']} cores, {machine['cpu']}, Python {machine['python']}, "
        f"load by {machine['load_generator']}, commit {machine['commit']}, {machine['date']}; "
        f"{CONNECTIONS} connections, {args.seconds:g} s per run (best of {args.repeat}), server on core 0, "
        f"load on core {LOAD_CPU}; load average before: {load_before}, after: {_loadavg()}."
    )
    print()
    print(markdown_table(results))
    print()
    for f in results:
        if f.server.startswith("DashFleet"):
            print("\n".join(target_lines(f, bare, proto)))
        for note in f.notes:
            print(f"- note, {f.server}: {note}")
    for line in skipped:
        print(f"- {line}")

    out = BENCH_DIR / "results" / "server_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "seconds": args.seconds,
                "connections": CONNECTIONS,
                "repeat": args.repeat,
                "results": [f.as_dict() for f in results],
                "skipped": skipped,
            },
            indent=2,
        )
    )
    print(f"\nraw figures: {out.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
