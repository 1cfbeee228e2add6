"""Alert figures (docs/benchmarks.md, "Alerts"):

1. rule evaluation per report, in process: AlertEngine.on_report with 20 rules that a report does
   not cross (the usual case), against no rules;
2. the report rate of the real server (wrk, the usual report body) for an organisation with 20
   rules against one with none, alternating in the same run on the same server;
3. the offline sweep over 100,000 machines on PostgreSQL (5 % of them silent, one offline rule).

Usage: python bench/alerts.py [--seconds 10] [--rounds 3] [--machines 100000] [--skip-http] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _loadgen import report_body, run_load
from _servers import (
    admin_cli,
    fresh_postgres_database,
    postgres_reason_unavailable,
    running_dashfleet,
)

RULES = 20


def twenty_rules() -> list[dict]:
    """Thresholds the bench report (CPU 45, RAM 62, disk 34) stays below: nothing changes."""
    kinds = ["cpu", "ram", "disk", "offline"]
    return [
        {"name": f"rule {n}", "kind": kinds[n % 4], **({} if kinds[n % 4] == "offline" else {"threshold": 90 + n % 5})}
        for n in range(RULES)
    ]


def evaluation_cost(iterations: int = 200_000) -> dict[str, float]:
    from admin.core.config import Settings
    from admin.services.alert_engine import AlertEngine, OrgAlerts, Rule

    engine = AlertEngine(None, Settings(_env_file=None))  # type: ignore[arg-type] - no database needed
    report = report_body("bench-00000")["report"]
    results = {}
    for count in (0, RULES):
        org = OrgAlerts()
        for n, spec in enumerate(twenty_rules()[:count]):
            rule = Rule(
                n,
                1,
                spec["name"],
                spec["kind"],
                spec.get("threshold", 0.0),
                spec.get("threshold", 0.0),
                0,
                "warning",
                (),
                None,
            )
            org.rules[n] = rule
            (org.offline_rules if rule.kind == "offline" else org.metric_rules).append(rule)
        engine.orgs = {1: org} if count else {}
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(iterations):
                engine.on_report(1, "bench-00000", report, 0.0)
            samples.append((time.perf_counter() - start) / iterations * 1e6)
        results[f"{count} rules"] = min(samples)
    return results


def report_rate(seconds: float, rounds: int) -> dict[str, object]:
    with running_dashfleet("alerts") as (server, _key):
        workdir = server.workdir
        with_rules = admin_cli(workdir, None, "org", "create", "with-rules")
        admin = admin_cli(workdir, None, "key", "create", "--org", "with-rules", "--scope", "admin")["api_key"]
        without = admin_cli(workdir, None, "org", "create", "no-rules")
        for spec in twenty_rules():
            resp = httpx.post(
                server.base_url + "/api/alerts/rules", json=spec, headers={"Authorization": f"Bearer {admin}"}
            )
            resp.raise_for_status()
        rates: dict[str, list[float]] = {"20 rules": [], "no rules": []}
        per_cpu: dict[str, list[float]] = {"20 rules": [], "no rules": []}
        pair = [("no rules", without), ("20 rules", with_rules)]
        for n in range(rounds):  # alternating, so both see the same machine load
            for label, org in pair if n % 2 == 0 else pair[::-1]:  # and neither always goes first
                result = run_load(
                    server.base_url,
                    "/api/fleet/report",
                    "report",
                    1000,
                    org["api_key"],
                    seconds=seconds,
                    server_pid=server.proc.pid,
                )
                rates[label].append(result.rps)
                per_cpu[label].append(result.rps_per_cpu or 0.0)
        median = {label: statistics.median(values) for label, values in rates.items()}
        median_cpu = {label: statistics.median(values) for label, values in per_cpu.items()}
        return {
            "rates": rates,
            "median": median,
            "ratio": median["20 rules"] / median["no rules"],
            # Reports per second of server CPU: what the rules cost, whatever else the machine runs.
            "per_cpu": per_cpu,
            "median_per_cpu": median_cpu,
            "ratio_per_cpu": median_cpu["20 rules"] / median_cpu["no rules"],
        }


def sweep_time(machines: int) -> dict[str, float] | str:
    reason = postgres_reason_unavailable()
    if reason:
        return reason
    from sqlalchemy import insert, text

    from admin.core.config import Settings
    from admin.core.db import make_engine, migrate
    from admin.models import AlertRule, Machine, Organization
    from admin.services.alert_engine import AlertEngine

    with fresh_postgres_database() as url:
        settings = Settings(_env_file=None, database_url=url, offline_after_seconds=300)
        migrate(settings)
        engine = make_engine(settings)
        now = time.time()
        with engine.begin() as conn:
            org_id = conn.execute(
                insert(Organization.__table__).returning(Organization.__table__.c.id), {"name": "o", "created_at": now}
            ).scalar_one()
            rows = [
                {
                    "org_id": org_id,
                    "machine_id": f"pc-{n:06d}",
                    "last_seen": now - (3600 if n % 20 == 0 else 10),
                    "report": "{}",
                    "system": "{}",
                }
                for n in range(machines)
            ]
            for start in range(0, machines, 10_000):
                conn.execute(insert(Machine.__table__), rows[start : start + 10_000])
            conn.execute(
                insert(AlertRule.__table__),
                {
                    "org_id": org_id,
                    "name": "offline",
                    "kind": "offline",
                    "for_seconds": 0,
                    "severity": "warning",
                    "channels": "[]",
                    "machine_ids": None,
                    "created_at": now,
                },
            )
            conn.execute(text("ANALYZE"))
        alerts = AlertEngine(engine, settings)
        alerts.started = now - 3600  # past the start-up grace
        timings = {}
        start = time.perf_counter()
        _, _, changes = alerts.sweep()
        timings["first sweep (fires 5 % offline)"] = time.perf_counter() - start
        timings["alerts fired"] = float(sum(1 for c in changes if c.applied))
        steady = []
        for _ in range(5):
            start = time.perf_counter()
            alerts.sweep()
            steady.append(time.perf_counter() - start)
        timings["steady sweep (nothing changes), median"] = statistics.median(steady)
        engine.dispose()
        return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--machines", type=int, default=100_000)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()

    print("1. rule evaluation per report (in process, best of 5 rounds):")
    for label, micros in evaluation_cost().items():
        print(f"   {label}: {micros:.2f} us")
    if not args.skip_http:
        rate = report_rate(args.seconds, args.rounds)
        print(f"2. report rate, same server, alternating rounds of {args.seconds:g} s (req/s): {rate['rates']}")
        print(f"   median: {rate['median']}; 20 rules / none = {rate['ratio']:.1%}")
        print(f"   per server CPU-second: {rate['per_cpu']}")
        print(f"   median: {rate['median_per_cpu']}; 20 rules / none = {rate['ratio_per_cpu']:.1%}")
    if not args.skip_sweep:
        sweep = sweep_time(args.machines)
        print(f"3. offline sweep over {args.machines:,} machines on PostgreSQL:")
        if isinstance(sweep, str):
            print(f"   skipped: {sweep}")
        else:
            for label, value in sweep.items():
                print(f"   {label}: {value:.3f}" + ("" if label == "alerts fired" else " s"))


if __name__ == "__main__":
    main()
