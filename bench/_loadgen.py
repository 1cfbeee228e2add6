"""HTTP load for the server benchmarks: wrk with bench/wrk_post.lua, or an async httpx fallback.

Both send the same bodies (built here) for N distinct machine ids, round robin, over a fixed number
of keep-alive connections, and return the same LoadResult. wrk is preferred: one C thread drives
far more requests than Python can, so the figure measures the server, not the generator. The
fallback runs in its own process (pinned like wrk) and says so in the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "wrk_post.lua"
MACHINE_ID_PLACEHOLDER = "__MACHINE_ID__"
ID_PREFIX = "bench-"


def machine_id(index: int, prefix: str = ID_PREFIX) -> str:
    # Same format as wrk_post.lua: the runs with 100 and 10,000 machines share their first ids.
    return f"{prefix}{index:05d}"


def report_body(machine: str) -> dict:
    """What a current agent sends every minute (about 700 bytes of JSON)."""
    return {
        "machine_id": machine,
        "report": {
            "timestamp": "2026-01-02T15:30:45+00:00",
            "cpu_percent": 45.2,
            "ram_percent": 62.1,
            "disk_percent": 34.5,
            "ram_used_gib": 9.93,
            "ram_total_gib": 16.0,
            "disk_used_gib": 164.2,
            "disk_total_gib": 476.0,
            "uptime_seconds": 273_845.0,
            "uptime_hms": "76:04:05",
            "health": {"score": 78, "status": "ok", "reasons": []},
            "system": {
                "os": "Windows",
                "os_version": "10.0.22631",
                "platform": "Windows-11-10.0.22631-SP0",
                "architecture": "AMD64",
                "python_version": "3.11.9",
                "hardware_id": "4C4C4544-0042-3910-8051-B4C04F385A32",
                "agent_version": "1.0.0",
                "hostname": machine,
            },
        },
    }


def ping_body(machine: str) -> dict:
    return {"machine_id": machine, "hardware_id": "4C4C4544-0042-3910-8051-B4C04F385A32", "timestamp": 1767367845.25}


BODIES = {"report": report_body, "ping": ping_body}


def body_template(kind: str) -> str:
    return json.dumps(BODIES[kind](MACHINE_ID_PLACEHOLDER), separators=(",", ":"))


@dataclass
class LoadResult:
    generator: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    # Socket errors plus responses with status >= 400 (wrk counts those, the fallback too).
    errors: int
    # CPU time the server process used during the run (user + system, all its threads).
    server_cpu_seconds: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_core_share(self) -> float | None:
        """How much of its core the server got: well below 1 means other processes competed."""
        return self.server_cpu_seconds / self.seconds if self.server_cpu_seconds and self.seconds else None

    @property
    def rps_per_cpu(self) -> float | None:
        """Requests per CPU-second of the server: its rate on a core of its own, even on a busy machine."""
        return self.requests / self.server_cpu_seconds if self.server_cpu_seconds else None

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "rps": round(self.rps, 1),
            "rps_per_cpu": round(self.rps_per_cpu, 1) if self.rps_per_cpu else None,
            "server_core_share": round(self.server_core_share, 3) if self.server_core_share else None,
        }


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a Linux process, all threads (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(
    base_url: str,
    path: str,
    kind: str,
    machines: int,
    api_key: str,
    *,
    connections: int = 16,
    seconds: float = 10.0,
    cpu: str | None = "1",
    server_pid: int | None = None,
) -> LoadResult:
    """Run one load (report or ping bodies) against base_url+path; wrk if present, else httpx.

    With server_pid, also measures the CPU time the server spent meanwhile."""
    taskset = ["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []
    cpu_before = process_cpu_seconds(server_pid) if server_pid else None
    if wrk_available():
        result = _run_wrk(taskset, base_url, path, kind, machines, api_key, connections, seconds)
    else:
        cmd = [
            *taskset,
            sys.executable,
            str(Path(__file__)),
            "--url",
            base_url + path,
            "--kind",
            kind,
            "--machines",
            str(machines),
            "--key",
            api_key,
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result = LoadResult(**json.loads(out.strip().splitlines()[-1]))
    if server_pid:
        result.server_cpu_seconds = process_cpu_seconds(server_pid) - cpu_before
    return result


def _run_wrk(
    taskset: list[str],
    base_url: str,
    path: str,
    kind: str,
    machines: int,
    api_key: str,
    connections: int,
    seconds: float,
) -> LoadResult:
    threads = 1  # one core for the generator: more threads would only contend for it
    cmd = [
        *taskset,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        base_url,
        "--",
        path,
        str(machines),
        api_key,
        ID_PREFIX,
        body_template(kind),
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}")
    raw = json.loads(lines[-1].removeprefix("WRK_RESULT "))
    errors = sum(v for k, v in raw.items() if k.startswith("errors_"))
    return LoadResult(
        "wrk", raw["requests"], raw["duration_us"] / 1e6, raw["p50_us"] / 1e3, raw["p99_us"] / 1e3, errors
    )


# --- fallback: async httpx in this process (run as a script by run_load) -----------------------


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


async def _httpx_load(url: str, kind: str, machines: int, api_key: str, connections: int, seconds: float) -> LoadResult:
    import httpx

    bodies = [json.dumps(BODIES[kind](machine_id(i))).encode() for i in range(machines)]
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient, first: int) -> None:
        nonlocal errors
        i = first
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await client.post(url, content=bodies[i % machines], headers=headers)
                if response.status_code >= 400:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)
            i += connections

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client, c) for c in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(
        "httpx", len(latencies), elapsed, _percentile(latencies, 50) * 1e3, _percentile(latencies, 99) * 1e3, errors
    )


async def _post_each(url: str, kind: str, machines: int, api_key: str, connections: int) -> dict[int, int]:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"}
    statuses: dict[int, int] = {}
    pending = iter(range(machines))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in pending:  # the workers share one iterator: each id is posted exactly once
            for _attempt in range(3):
                try:
                    status = (await client.post(url, json=BODIES[kind](machine_id(i)), headers=headers)).status_code
                    break
                except httpx.TransportError:  # a keep-alive connection the server closed: retry
                    status = 0  # counted as "no answer" if every attempt fails
            statuses[status] = statuses.get(status, 0) + 1

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    return statuses


def post_each(url: str, kind: str, machines: int, api_key: str, connections: int = 16) -> dict[int, int]:
    """Send one body for each of the first `machines` ids (to fill a fleet); status -> count."""
    return asyncio.run(_post_each(url, kind, machines, api_key, connections))


def main() -> None:
    parser = argparse.ArgumentParser(description="async httpx load generator (wrk fallback)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--kind", choices=sorted(BODIES), required=True)
    parser.add_argument("--machines", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(_httpx_load(args.url, args.kind, args.machines, args.key, args.connections, args.seconds))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
