"""What mounting the web UI costs the API: report rate with the UI mounted vs create_app(with_ui=False).

Two real servers on the same kind of fresh SQLite installation, each pinned to core 0 in turn, the
load (wrk, else httpx) on core 1, 16 connections, reports for 10,000 machines:

- "UI mounted": `python -m admin serve`, exactly as users run it (NiceGUI mounted with ui.run_with);
- "API only": the same app built with create_app(with_ui=False), served by uvicorn with the same
  options as `serve` (proxy headers, no access log).

Runs alternate (mounted, API only, mounted, ...) so drift in the machine's load hits both alike;
the best run of each counts, and requests per server CPU-second are given too (robust when other
work shares the machine).

    .venv/bin/python bench/ui_api_cost.py [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _loadgen import LoadResult, run_load
from _servers import BENCH_DIR, LOAD_CPU, REPO_ROOT, admin_cli, running, temp_workdir

sys.path.insert(0, str(REPO_ROOT))
from common.constants import PATH_REPORT

# 10,000 machines: each sends a few reports per run, far below its own limit (120 a minute).
MACHINES, CONNECTIONS, WARM_UP_SECONDS = 10_000, 16, 2.0
RESULTS = BENCH_DIR / "results" / "ui_api_cost.json"

# The API-only server: uvicorn with the options `dashfleet-admin serve` passes (admin/cli.py).
API_ONLY = """
import sys, uvicorn
from admin.main import create_app
uvicorn.run(create_app(with_ui=False), host="127.0.0.1", port=int(sys.argv[1]), log_level="info",
            proxy_headers=True, forwarded_allow_ips="127.0.0.1", access_log=False)
"""
SERVERS = {
    "UI mounted (dashfleet-admin serve)": [sys.executable, "-m", "admin", "serve", "--port", "{port}"],
    "API only (create_app(with_ui=False))": [sys.executable, "-c", API_ONLY, "{port}"],
}


def one_run(name: str, cmd: list[str], seconds: float) -> dict[str, LoadResult]:
    with temp_workdir("ui-cost") as workdir:
        key = admin_cli(workdir, None, "org", "create", "Bench")["api_key"]
        with running(name.split()[0].lower(), cmd, workdir) as server:
            run_load(
                server.base_url,
                PATH_REPORT,
                "report",
                MACHINES,
                key,
                connections=CONNECTIONS,
                seconds=WARM_UP_SECONDS,
                cpu=LOAD_CPU,
            )
            return {
                "report": run_load(
                    server.base_url,
                    PATH_REPORT,
                    "report",
                    MACHINES,
                    key,
                    connections=CONNECTIONS,
                    seconds=seconds,
                    cpu=LOAD_CPU,
                    server_pid=server.proc.pid,
                )
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each server; the best counts")
    args = parser.parse_args()
    runs: dict[str, list[LoadResult]] = {name: [] for name in SERVERS}
    for _ in range(args.repeat):
        for name, cmd in SERVERS.items():
            result = one_run(name, cmd, args.seconds)["report"]
            runs[name].append(result)
            print(
                f"  {name}: {result.rps:,.0f} reports/s, p99 {result.p99_ms:.1f} ms, "
                f"{result.rps_per_cpu or 0:,.0f} per server CPU-second, {result.errors} errors",
                flush=True,
            )
    best = {name: max(results, key=lambda r: r.rps) for name, results in runs.items()}
    best_per_cpu = {name: max((r.rps_per_cpu or 0) for r in results) for name, results in runs.items()}
    mounted, api_only = (best[n] for n in SERVERS)
    ratio = mounted.rps / api_only.rps
    ratio_cpu = list(best_per_cpu.values())[0] / list(best_per_cpu.values())[1]
    rows = [
        "| server | reports/s (best) | p50 ms | p99 ms | errors | reports per server CPU-second (best) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows += [
        f"| {name} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {best_per_cpu[name]:,.0f} |"
        for name, r in best.items()
    ]
    print("\n".join(rows))
    print(
        f"mounted / API only: {ratio:.1%} of the rate, {ratio_cpu:.1%} per server CPU-second "
        f"(load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])})"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machines": MACHINES,
                "connections": CONNECTIONS,
                "seconds": args.seconds,
                "runs": {name: [r.as_dict() for r in results] for name, results in runs.items()},
                "ratio_rps": ratio,
                "ratio_per_cpu": ratio_cpu,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
