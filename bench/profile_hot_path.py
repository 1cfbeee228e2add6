"""Where the real server's time goes on the report or ping route, under the benchmark's load.

Starts DashFleet as server_throughput.py does (SQLite, or PostgreSQL with --postgres), fills the
fleet, drives the route with wrk and samples the server with py-spy (`--gil`: only the thread that
holds the GIL, i.e. the Python work that the single core serialises). Prints the server's CPU time
per request, split by area (rate limiter, auth, parsing and validation, database, framework, HTTP
server, ...) and the functions with the most time of their own. A tool, not a benchmark: run_all
does not run it.

    .venv/bin/python bench/profile_hot_path.py [--kind report|ping] [--seconds 10]
    .venv/bin/python bench/profile_hot_path.py --dashfleet-root /path/to/patched/checkout
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _loadgen import post_each, run_load
from _servers import LOAD_CPU, NO_LIMITS_ENV, REPO_ROOT, fresh_postgres_database, running_dashfleet

SAMPLE_RATE = 250
# An area owns a sample when one of its patterns matches a frame of the stack (checked in this order,
# the whole stack each time); frames of the framework and the HTTP server count only if none did.
SPECIFIC_AREAS = [
    ("rate limiter", r"limits/|admin/core/limits\.py"),
    (
        "auth (key -> organisation)",
        r"admin/api/deps\.py \(_principal|admin/services/accounts\.py|admin/core/security\.py",
    ),
    ("database write (group writer, SQLAlchemy, driver)", r"admin/services/writer\.py|sqlalchemy/|sqlite3|psycopg"),
    ("body parse + validation", r"_parse \(admin/api|common/schemas\.py|pydantic"),
    ("fleet service (row building)", r"admin/services/fleet\.py"),
    ("route handler", r"admin/api/routes/"),
]
GENERIC_AREAS = [
    ("NiceGUI", r"nicegui/"),
    ("FastAPI/Starlette (routing, middleware, dependencies, response)", r"fastapi/|starlette/|admin/api/"),
    ("uvicorn + httptools (HTTP)", r"uvicorn/|httptools"),
]
OTHER = "event loop, threads, other"


def area_of(frames: list[str]) -> str:
    for name, pattern in SPECIFIC_AREAS:
        if any(re.search(pattern, f) for f in frames):
            return name
    for frame in reversed(frames):  # the innermost frame that belongs to one of them
        for name, pattern in GENERIC_AREAS:
            if re.search(pattern, frame):
                return name
    return OTHER


def _short(frame: str) -> str:
    return re.sub(r"/\S*/(site-packages|lib/python3\.\d+)/", "", frame.replace(str(REPO_ROOT) + "/", ""))


def summarise(raw_file: Path, cpu_us_per_request: float) -> str:
    areas: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # py-spy writes a stack per line; anything else is not a sample
            continue
        frames = [_short(f) for f in stack.split(";")[1:]]  # [0] is the thread
        n = int(count)
        total += n
        areas[area_of(frames)] += n
        own[re.sub(r":\d+\)$", ")", frames[-1]) if frames else "?"] += n
    if not total:
        return "no samples (is the server busy? does py-spy have ptrace permission?)"
    lines = ["| area | share of GIL-held samples | CPU µs per request (approx.) |", "| --- | ---: | ---: |"]
    for name, n in areas.most_common():
        lines.append(f"| {name} | {n / total:.1%} | {n / total * cpu_us_per_request:,.0f} |")
    lines += ["", "functions with the most time of their own:"]
    lines += [f"  {n / total:5.1%}  {name}" for name, n in own.most_common(20)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["report", "ping"], default="report")
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--postgres", action="store_true", help="on PostgreSQL (127.0.0.1:5432) instead of SQLite")
    parser.add_argument("--dashfleet-root", type=Path, default=REPO_ROOT)
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--keep", type=Path, help="also copy py-spy's raw (collapsed) stacks here")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        sys.exit("py-spy not found: pip install py-spy (the `bench` extra)")
    env = {
        "PYTHONPATH": str(args.dashfleet_root.resolve()),
        **NO_LIMITS_ENV,  # the load is one client: the per-address and new-machine limits would refuse most of it
        **dict(e.split("=", 1) for e in args.server_env),
    }
    path = {"report": "/api/fleet/report", "ping": "/api/fleet/ping"}[args.kind]

    with tempfile.TemporaryDirectory() as tmp, fresh_postgres_database() if args.postgres else _NoDatabase() as db_url:
        if db_url:
            env["DASHFLEET_DATABASE_URL"] = db_url
        with running_dashfleet("profile", env) as (server, key):
            post_each(server.base_url + "/api/fleet/report", "report", args.machines, key)
            run_load(server.base_url, path, args.kind, args.machines, key, seconds=2, cpu=LOAD_CPU)  # warm-up
            result = {}
            load = threading.Thread(
                target=lambda: result.update(
                    r=run_load(
                        server.base_url,
                        path,
                        args.kind,
                        args.machines,
                        key,
                        seconds=args.seconds,
                        cpu=LOAD_CPU,
                        server_pid=server.proc.pid,
                    )
                )
            )
            load.start()
            time.sleep(1.0)  # profile the steady state, not wrk's connecting
            raw = Path(tmp) / "stacks.txt"
            subprocess.run(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(server.proc.pid),
                    "--gil",
                    "--rate",
                    str(SAMPLE_RATE),
                    "--duration",
                    str(max(1, int(args.seconds) - 2)),
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--nonblocking",
                ],
                check=True,
                capture_output=True,
            )
            load.join()
        r = result["r"]
        cpu_us = r.server_cpu_seconds / r.requests * 1e6 if r.requests and r.server_cpu_seconds else 0.0
        print(
            f"{args.kind} x {args.machines:,} machines ({'PostgreSQL' if args.postgres else 'SQLite'}): "
            f"{r.rps:,.0f}/s, p99 {r.p99_ms:.1f} ms, {r.errors} errors; the server used "
            f"{r.server_core_share or 0:.0%} of its core, {cpu_us:,.0f} µs of CPU per request "
            f"({r.rps_per_cpu or 0:,.0f} requests per CPU-second)\n"
        )
        print(summarise(raw, cpu_us))
        if args.keep:
            shutil.copy(raw, args.keep)


class _NoDatabase:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
