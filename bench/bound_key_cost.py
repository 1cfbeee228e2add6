"""What a machine's own (bound) key costs the hot path against an organisation key (issue 11).

One real server (SQLite, started as a user starts it), one machine enrolled through
`POST /api/agent/enroll`; then reports and heartbeats for that one machine id, alternately with the
organisation key and with the machine's bound key, `--rounds` times each, in the same run. The
figure is requests per CPU-second of the server process (its rate on a core of its own, whatever
else the machine does) and the ratio bound / organisation. Prints a Markdown table for
docs/benchmarks.md and writes bench/results/bound_key_cost.json.

    .venv/bin/python bench/bound_key_cost.py [--seconds 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import httpx
from _loadgen import LoadResult, machine_id, run_load
from _servers import BENCH_DIR, LOAD_CPU, REPO_ROOT, admin_cli, running_dashfleet

sys.path.insert(0, str(REPO_ROOT))
from common.constants import PATH_ENROLL, PATH_PING, PATH_REPORT

# Count but never refuse during the benchmark (one machine sends thousands a second).
ENV = {"DASHFLEET_REPORT_LIMIT_PER_MINUTE": "1000000", "DASHFLEET_PING_LIMIT_PER_MINUTE": "1000000"}
CONNECTIONS = 16


def enrol(server, workdir_env: dict[str, str]) -> str:
    enrol_key = admin_cli(server.workdir, workdir_env, "key", "create", "--org", "bench", "--scope", "enroll")
    resp = httpx.post(
        server.base_url + PATH_ENROLL,
        json={"machine_id": machine_id(0), "hardware_id": "bench-hardware"},
        headers={"Authorization": f"Bearer {enrol_key['api_key']}"},
        timeout=30,
    )
    resp.raise_for_status()
    return resp.json()["agent_key"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    results: dict[str, list[LoadResult]] = {}
    with running_dashfleet("bound-key", ENV) as (server, org_key):
        bound_key = enrol(server, ENV)
        keys = {"organisation key": org_key, "bound key": bound_key}
        for _ in range(args.rounds):
            for kind, path in (("report", PATH_REPORT), ("ping", PATH_PING)):
                for label, key in keys.items():
                    result = run_load(
                        server.base_url,
                        path,
                        kind,
                        1,
                        key,
                        connections=CONNECTIONS,
                        seconds=args.seconds,
                        cpu=LOAD_CPU,
                        server_pid=server.proc.pid,
                    )
                    if result.errors:
                        raise SystemExit(f"{kind} with the {label}: {result.errors} errors")
                    results.setdefault(f"{kind}|{label}", []).append(result)
                    print(
                        f"  {kind:6} {label:16} {result.rps:8,.0f}/s  {result.rps_per_cpu or 0:8,.0f}/CPU-s", flush=True
                    )

    rows, raw = [], {}
    for kind in ("report", "ping"):
        medians = {}
        for label in ("organisation key", "bound key"):
            runs = results[f"{kind}|{label}"]
            medians[label] = statistics.median(r.rps_per_cpu or 0 for r in runs)
            raw[f"{kind}|{label}"] = [r.as_dict() for r in runs]
        ratio = medians["bound key"] / medians["organisation key"]
        rows.append(f"| {kind} | {medians['organisation key']:,.0f} | {medians['bound key']:,.0f} | {ratio:.2f} |")
    table = "\n".join(
        [
            "| request | organisation key (req/CPU-s) | bound key (req/CPU-s) | bound / organisation |",
            "| --- | --- | --- | --- |",
            *rows,
        ]
    )
    print(f"\nmedian of {args.rounds} alternating runs of {args.seconds:g} s each, {CONNECTIONS} connections:\n")
    print(table)
    out = Path(BENCH_DIR) / "results" / "bound_key_cost.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"table": table, "runs": raw}, indent=2))


if __name__ == "__main__":
    main()
