"""Messages and commands (issue 12): broadcast creation, delivery latency, the cost of waiting agents.

One real server process (`python -m admin serve`, flags on, pinned to core 0), its organisation
made with the CLI, 10,000 machines known through heartbeats. Simulated agents
(bench/_waiting_agents.py, pinned to core 1 with the load generator) hold the inbox long poll.

- broadcast: POST /api/messages and /api/commands with "all": true to 10,000 machines, the request's
  wall time as the client sees it (median and worst of --rounds).
- latency: 1,000 waiting agents; a message to all 1,000; each posts `delivered` the moment it
  gets it; latency is the time from just before the POST to the server's 200 for `delivered`
  (p50/p95/max over --rounds broadcasts).
- waiting: the report rate (wrk, 16 connections, 10,000 machines) without waiting agents, then
  with 10,000 agents holding a long poll, in the same run; the server's RSS with them waiting.

    .venv/bin/python bench/messaging.py [--seconds 10] [--rounds 5] [--postgres] [--only latency]
        [--baseline-root /path/to/a/checkout/of/main] [--profile]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from _loadgen import post_each, run_load
from _servers import (
    BENCH_DIR,
    LOAD_CPU,
    NO_LIMITS_ENV,
    REPO_ROOT,
    admin_cli,
    child_env,
    fresh_postgres_database,
    pinned,
    running_dashfleet,
)

FLEET = 10_000
LATENCY_AGENTS = 1_000
ENV = {
    "DASHFLEET_FEATURE_MESSAGING": "true",
    "DASHFLEET_FEATURE_COMMANDS": "true",
    **NO_LIMITS_ENV,
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def server_pid(server) -> int:
    """The Python process itself (taskset execs it, keeping the pid)."""
    return server.proc.pid


class Agents:
    """The simulated agents' process."""

    def __init__(self, url: str, key: str, machines: int, ack: bool, spread: float) -> None:
        cmd = [sys.executable, str(BENCH_DIR / "_waiting_agents.py"), "--url", url, "--key", key]
        cmd += ["--machines", str(machines), "--spread", str(spread)] + (["--ack"] if ack else [])
        self.proc = subprocess.Popen(
            pinned(cmd, LOAD_CPU), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env()
        )
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"the agents did not start: {line!r}")
        time.sleep(2.0)  # the last requests reach the server and start waiting

    def dump(self, accepted: int = 0) -> dict[str, dict[str, list[float]]]:
        """The agents' times, once they noted `accepted` answers to `delivered` (or 30 s passed)."""
        self.proc.stdin.write(f"dump {accepted}\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        self.proc.wait(timeout=30)
        return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def broadcast(client: httpx.Client, rounds: int) -> dict:
    out = {}
    for what, body in (
        ("message", {"title": "Reboot tonight", "body": "Save your work."}),
        ("command", {"kind": "report_now"}),
    ):
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            resp = client.post(f"/api/{what}s", json={**body, "all": True})
            times.append(time.perf_counter() - started)
            assert resp.status_code == 201 and resp.json()["deliveries"] == FLEET, resp.text
            client.post(f"/api/{what}s/{resp.json()[what + '_id']}/cancel")  # out of the agents' way
        out[what] = {"median_s": statistics.median(times), "max_s": max(times)}
        print(
            f"  broadcast of a {what} to {FLEET:,} machines: median {statistics.median(times) * 1e3:.0f} ms, "
            f"worst {max(times) * 1e3:.0f} ms",
            flush=True,
        )
    return out


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def latency(client: httpx.Client, url: str, key: str, rounds: int, pid: int) -> dict:
    targets = [f"bench-{i:05d}" for i in range(LATENCY_AGENTS)]
    samples: list[float] = []
    received: list[float] = []
    server_cpu: list[float] = []
    agents_cpu: list[float] = []
    for n in range(rounds):  # a fresh set of agents per broadcast, all waiting when it is sent
        agents = Agents(url, key, LATENCY_AGENTS, ack=True, spread=5.0)
        cpu_before = cpu_seconds(pid), cpu_seconds(agents.proc.pid)
        sent_at = time.time()
        resp = client.post("/api/messages", json={"title": f"round {n}", "machine_ids": targets})
        assert resp.status_code == 201, resp.text
        message_id = resp.json()["message_id"]
        deadline = time.monotonic() + 60
        # The progress of the newest message, as the web UI's list shows it (not its 1,000 deliveries:
        # reading those 5 times a second would be the bench's own load on the server).
        while client.get("/api/messages", params={"limit": 1}).json()["data"][0]["progress"]["delivered"] < len(
            targets
        ):
            assert time.monotonic() < deadline, "not every agent got the message within 60 s"
            time.sleep(0.2)
        # CPU time from the send until all were delivered (and up to 0.2 s of polling after).
        server_cpu.append(cpu_seconds(pid) - cpu_before[0])
        agents_cpu.append(cpu_seconds(agents.proc.pid) - cpu_before[1])
        dump = agents.dump(accepted=len(targets))
        samples += [t - sent_at for t in dump["accepted"].get(message_id, [])]
        received += [t - sent_at for t in dump["received"].get(message_id, [])]
    result = {
        "agents": LATENCY_AGENTS,
        "rounds": rounds,
        "samples": len(samples),
        "p50_s": pct(samples, 50),
        "p95_s": pct(samples, 95),
        "max_s": max(samples),
        "inbox_p50_s": pct(received, 50),
        "inbox_p95_s": pct(received, 95),
        "server_cpu_s": server_cpu,
        "agents_cpu_s": agents_cpu,
    }
    print(
        f"  send -> delivered, {LATENCY_AGENTS:,} waiting agents, {rounds} broadcasts ({len(samples):,} deliveries): "
        f"p50 {result['p50_s'] * 1e3:.0f} ms, p95 {result['p95_s'] * 1e3:.0f} ms, max {result['max_s'] * 1e3:.0f} ms "
        f"(send -> inbox answered: p50 {result['inbox_p50_s'] * 1e3:.0f} ms, p95 {result['inbox_p95_s'] * 1e3:.0f} ms)"
        f"; CPU per broadcast, server {statistics.median(server_cpu):.2f} s, agents {statistics.median(agents_cpu):.2f} s",
        flush=True,
    )
    return result


def waiting(server, url: str, key: str, seconds: float) -> dict:
    pid = server_pid(server)
    rss_idle = rss_mb(pid)
    without = run_load(url, "/api/fleet/report", "report", FLEET, key, seconds=seconds, server_pid=pid)
    agents = Agents(url, key, FLEET, ack=False, spread=25.0)  # started as a fleet's agents are: spread out
    rss_waiting = rss_mb(pid)
    with_agents = run_load(url, "/api/fleet/report", "report", FLEET, key, seconds=seconds, server_pid=pid)
    rss_after = rss_mb(pid)
    agents.dump()
    result = {
        "rss_mb_before": rss_idle,
        "rss_mb_waiting": rss_waiting,
        "rss_mb_waiting_under_load": rss_after,
        "reports_per_s_without": without.rps,
        "reports_per_s_with": with_agents.rps,
        "ratio": with_agents.rps / without.rps,
        "p99_ms_without": without.p99_ms,
        "p99_ms_with": with_agents.p99_ms,
        "generator": without.generator,
    }
    print(
        f"  server RSS: {rss_idle:.0f} MB before, {rss_waiting:.0f} MB with {FLEET:,} agents waiting, "
        f"{rss_after:.0f} MB after the report load",
        flush=True,
    )
    print(
        f"  reports/s ({FLEET:,} machines): {without.rps:,.0f} without waiting agents, {with_agents.rps:,.0f} with "
        f"{FLEET:,} waiting ({result['ratio']:.0%}); p99 {without.p99_ms:.1f} -> {with_agents.p99_ms:.1f} ms",
        flush=True,
    )
    return result


def run(label: str, env: dict[str, str], args) -> dict:
    print(f"{label}:", flush=True)
    parts = set(args.only or ("broadcast", "latency", "waiting"))
    with running_dashfleet(label, env) as (server, agent_key):
        admin_key = admin_cli(
            server.workdir, env, "key", "create", "--org", "bench", "--scope", "admin", "--scope", "read"
        )["api_key"]
        url = server.base_url
        statuses = post_each(url + "/api/fleet/ping", "ping", FLEET, agent_key)
        assert set(statuses) == {200}, statuses
        profiler = None
        if args.profile:  # py-spy on the server from here on (not the fleet's first heartbeats)
            flame = BENCH_DIR / "results" / f"messaging-{label}.txt"
            flame.parent.mkdir(exist_ok=True)
            profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(server_pid(server)),
                    "--output",
                    str(flame),
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--rate",
                    "250",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120) as client:
            out = {"broadcast": broadcast(client, args.rounds)} if "broadcast" in parts else {}
            if "latency" in parts:
                out["latency"] = latency(client, url, agent_key, args.rounds, server_pid(server))
        if "waiting" in parts:
            out["waiting"] = waiting(server, url, agent_key, args.seconds)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL (127.0.0.1:5432)")
    parser.add_argument("--only", action="append", choices=("broadcast", "latency", "waiting"), help="repeatable")
    parser.add_argument(
        "--baseline-root",
        type=Path,
        help="a checkout of another commit (say, before a change): measured first, in the same run, the same way",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy record the server (bench/results/*.svg)")
    args = parser.parse_args()
    roots = [("baseline", args.baseline_root.resolve())] if args.baseline_root else []
    roots.append(("", REPO_ROOT))
    results = {}
    for name, root in roots:
        env = {**ENV, "PYTHONPATH": str(root)}
        label = f"{name}-" if name else ""
        results[f"{label}sqlite"] = run(f"{label}sqlite", env, args)
        if args.postgres:
            with fresh_postgres_database() as db_url:
                pg_env = {**env, "DASHFLEET_DATABASE_URL": db_url}
                results[f"{label}postgres"] = run(f"{label}postgres", pg_env, args)
    out = BENCH_DIR / "results" / "messaging.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"raw figures: {out}")


if __name__ == "__main__":
    main()
