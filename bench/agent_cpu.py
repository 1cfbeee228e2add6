"""The agent's real CPU cost per report and per heartbeat, as a user's machine sees it.

    .venv/bin/python bench/agent_cpu.py [--seconds 40] [--agent-python PYTHON] [--profile DIR]

The real `python -m desktop_agent --no-tray` process against a real server (http://, SQLite), one
cycle a second for --seconds: reports every second (heartbeats off), then heartbeats every second
(one report at start, then heartbeats only). Its CPU time (user + system, every thread, read by
psutil from outside) over the window, divided by the requests made in it, is the cost of one.

Requests a second apart cost more than in a tight loop: the interpreter's and the OS's caches go
cold between them. So in the same run, the floor: a bare `httpx.Client.post` of the same body to
the same route at the same spacing, in a process of the same interpreter. Goals (issue 16): a
heartbeat at most 1.2 times the bare request; a report at most the bare request plus 1.5 ms
(collection, queue and status line together); RSS at most 30 MB headless.

The machine may be shared: compare the ratios of one run, not absolute figures across runs.
--profile DIR also samples each agent phase with py-spy (the bench extra; every thread, on-CPU
only) into DIR/report.txt and DIR/heartbeat.txt, collapsed stacks, to show what stands above the
floor (bench/agent_cpu.py's `top` helper prints the heaviest frames).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import agent_footprint as footprint
import psutil
from _servers import running_dashfleet, stop_process

MB = 1_000_000

FLOOR = textwrap.dedent("""
    import json, sys, time
    import httpx

    url, key, path, body, count, spacing = sys.argv[1:7]
    count, spacing = int(count), float(spacing)
    client = httpx.Client(base_url=url, headers={"Authorization": "Bearer " + key}, timeout=10)
    payload = body.encode()
    headers = {"Content-Type": "application/json"}

    def post():
        response = client.post(path, content=payload, headers=headers)
        if response.status_code != 200:
            sys.exit(f"{path}: HTTP {response.status_code} {response.text}")

    for _ in range(3):  # connection made, first-use imports done: as the agent after its start
        post()
        time.sleep(spacing)
    cpu0, next_at = time.process_time(), time.monotonic()
    for _ in range(count):
        post()
        next_at += spacing
        time.sleep(max(0.0, next_at - time.monotonic()))
    print(json.dumps({"cpu_per_request": (time.process_time() - cpu0) / count, "count": count}))
""")


def floor(python: str, url: str, key: str, path: str, body: dict, count: int) -> float:
    done = subprocess.run(
        [python, "-c", FLOOR, url, key, path, json.dumps(body), str(count), "1"],
        capture_output=True,
        text=True,
        timeout=count * 3 + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bare httpx floor failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)["cpu_per_request"]


def agent_phase(url: str, key: str, kind: str, seconds: float, profile: Path | None) -> dict:
    """The real agent, headless, one `kind` ("report" or "heartbeat") a second for `seconds`."""
    args = ["--no-tray", "--machine-id", f"cpu-{kind}"]
    if kind == "report":
        args += ["--interval", "1", "--heartbeat-interval", "3600"]
    else:
        args += ["--interval", "3600", "--heartbeat-interval", "1"]
    with tempfile.TemporaryDirectory() as tmp:
        proc = footprint.start_agent(url, key, footprint.agent_env(Path(tmp)), *args)
        try:
            footprint.read_status_lines(proc, 1)  # started, reported once
            lines = _LineCounter(proc)
            me = psutil.Process(proc.pid)
            time.sleep(3)  # its heartbeat or report loop in its stride
            lines_before, cpu0, start = lines.count, sum(me.cpu_times()[:2]), time.monotonic()
            spy = _py_spy(proc.pid, seconds, profile / f"{kind}.txt") if profile else None
            time.sleep(seconds)
            if spy is not None:
                spy.wait(timeout=60)
            cpu, wall, lines_in_window = (
                sum(me.cpu_times()[:2]) - cpu0,
                time.monotonic() - start,
                lines.count - lines_before,
            )
            rss = me.memory_info().rss
        finally:
            stop_process(proc, timeout=20)
    # Reports print one status line each (counted); heartbeats are one a second of the window.
    count = lines_in_window if kind == "report" else round(wall)
    return {"cpu_seconds": cpu, "wall": wall, "count": count, "cpu_per_request": cpu / count, "rss": rss}


def _py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """py-spy samples every thread of the running agent (cProfile would see only its main thread,
    which only waits): collapsed stacks, counted only while on the CPU (idle waits left out)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "1000",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


class _LineCounter:
    """Counts the agent's accepted-report lines as it prints them (a thread reads its stdout)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.count = 0
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.count += " HTTP 200 | " in line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--agent-python", help="interpreter with only the agent extra (default: make a venv)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="also sample each agent phase with py-spy")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    python = footprint.PYTHON = footprint.agent_only_python(args.agent_python)
    count = int(args.seconds)
    results: dict = {"machine": footprint.machine(), "load_average_at_start": list(os.getloadavg())}
    print(f"machine: {results['machine']}; load average {results['load_average_at_start']}")
    sample = _agent_report(python)
    with running_dashfleet("agent-cpu") as (server, key):
        url = server.base_url
        ping = {"machine_id": "floor-ping", "hardware_id": "f" * 32, "timestamp": time.time()}
        results["floor_heartbeat"] = floor(python, url, key, "/api/fleet/ping", ping, count)
        results["heartbeat"] = agent_phase(url, key, "heartbeat", args.seconds, None)
        results["floor_report"] = floor(
            python, url, key, "/api/fleet/report", {"machine_id": "floor-report", "report": sample}, count
        )
        results["report"] = agent_phase(url, key, "report", args.seconds, None)
        if args.profile:
            for kind in ("report", "heartbeat"):
                agent_phase(url, key, kind, args.seconds, args.profile)
    hb, rep = results["heartbeat"], results["report"]
    fh, fr = results["floor_heartbeat"], results["floor_report"]
    print(
        f"heartbeat: agent {hb['cpu_per_request'] * 1000:.2f} ms CPU each ({hb['count']} in {hb['wall']:.0f} s), "
        f"bare httpx {fh * 1000:.2f} ms: {hb['cpu_per_request'] / fh:.2f}x the floor (goal <= 1.2x)"
    )
    print(
        f"report:    agent {rep['cpu_per_request'] * 1000:.2f} ms CPU each ({rep['count']} in {rep['wall']:.0f} s), "
        f"bare httpx {fr * 1000:.2f} ms: floor + {(rep['cpu_per_request'] - fr) * 1000:.2f} ms (goal <= + 1.5 ms)"
    )
    print(f"RSS headless after the report phase: {rep['rss'] / MB:.1f} MB (goal <= 30 MB)")
    if args.profile:
        for kind in ("report", "heartbeat"):
            print(f"\n{kind}: where the agent's CPU goes (py-spy, share of on-CPU samples, own frames)")
            for share, frame in top(args.profile / f"{kind}.txt"):
                print(f"  {share:5.1f} %  {frame}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


def top(collapsed: Path, count: int = 15) -> list[tuple[float, str]]:
    """The frames that were on the CPU most often (the last frame of each sampled stack)."""
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frame = stack.split(";")[-1]
        own[frame] = own.get(frame, 0) + int(samples)
        total += int(samples)
    ranked = sorted(own.items(), key=lambda item: -item[1])[:count]
    return [(100 * n / max(total, 1), frame) for frame, n in ranked]


def _agent_report(python: str) -> dict:
    """A report as this machine's agent makes it, for the floor's body (the same size on the wire)."""
    code = "import json; from desktop_agent.sampler import take_sample; print(json.dumps(take_sample().as_payload()))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, cwd=footprint.REPO_ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout)


if __name__ == "__main__":
    sys.exit(main())
