"""The agent's footprint against the real server: RSS (headless and with the tray), RSS growth over
1,000 report cycles, CPU per report cycle and per heartbeat, and average CPU at the default interval.

    .venv/bin/python bench/agent_footprint.py [--cycles 1000] [--idle-seconds 300] [--json FILE]
                                              [--agent-python PYTHON] [--packaged PROGRAM]

- The agent runs on an install with only the `agent` extra, as on a workstation: a venv made once
  under bench/results/agent-venv (`pip install '.[agent]'`), or --agent-python. The project's
  venv also has the server's packages, and httpx then loads its command-line extras (click, rich,
  pygments: about 5 MiB more); its headless RSS is shown too, for comparison.

- RSS: the real `python -m desktop_agent` process after 5 reports at a 1 s interval; with the tray,
  on an Xvfb display with trayer (skipped, and said so, when they are missing). The server is
  http://, for which the agent loads no CA store; the RSS against an https:// server (a stand-in
  TLS server with a private CA given as --ca-bundle) is given too.
- Cycles: a driver process runs the service's own report_cycle() (collect, queue on disk, send,
  status line) back to back against the server; the machine id rotates over 200 ids so the
  server's per-machine limit (120 a minute) never refuses a report. CPU is the driver's
  process time (user + system) divided by the cycles; RSS growth is after the last cycle minus after
  the first 100 (warm-up: caches, connection pool), with the RSS every 1,000 cycles to show the
  trend (settling or a leak: try --cycles 40000).
- Idle: the real agent with default settings (report 60 s, heartbeat 30 s) for --idle-seconds;
  its CPU seconds over the wall time, measured from its first report.
Targets (issue 4): RSS <= 30 MB headless, <= 35 MB with the tray; no growth; < 3 ms CPU per
cycle; < 0.1 % of one core at the default interval. Figures go to docs/benchmarks.md ("Agent").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tests" / "desktop_agent"))  # VirtualDesktop, AgentProcess

from _servers import child_env, running_dashfleet, stop_process  # noqa: E402

MIB, MB = 1024 * 1024, 1_000_000
AGENT_VENV = BENCH_DIR / "results" / "agent-venv"
PYTHON = sys.executable  # replaced in main() by the agent-only interpreter
AGENT: list[str] | None = None  # the agent's command, when not `PYTHON -m desktop_agent` (--packaged)


def agent_only_python(given: str | None = None) -> str:
    """An interpreter with only the agent extra installed (made once, remade when pyproject changes),
    or `given`; either way with the agent's modules compiled to bytecode, as on a workstation."""
    python = AGENT_VENV / "bin" / "python"
    stamp = AGENT_VENV / "pyproject.sha"
    wanted = __import__("hashlib").sha256((REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if given is None and (not python.exists() or not stamp.exists() or stamp.read_text() != wanted):
        print(f"making an agent-only venv in {AGENT_VENV} (pip install '.[agent]') ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(AGENT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"{REPO_ROOT}[agent]"], check=True)
        stamp.write_text(wanted)
    interpreter = given or str(python)
    # The agent runs from this checkout (cwd). pip and PyInstaller install it compiled; where
    # PYTHONDONTWRITEBYTECODE is set (as on the machines these figures come from), it would compile
    # its own modules at every start instead, and the compiler's heap stays in the RSS (+1 MB).
    subprocess.run(
        [interpreter, "-m", "compileall", "-q", "desktop_agent", "common"],
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return interpreter


def agent_env(root: Path, **extra: str) -> dict[str, str]:
    env = child_env(
        {
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_CONFIG_DIRS": str(root / "site"),
            "XDG_STATE_HOME": str(root / "state"),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    if "DISPLAY" not in extra:
        env.pop("DISPLAY", None)
    return env


def start_agent(url: str, key: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*(AGENT or [PYTHON, "-m", "desktop_agent"]), "--server", url, "--token", key, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def read_status_lines(proc: subprocess.Popen, count: int, timeout: float = 120) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"agent gave {len(lines)} of {count} lines: {lines} {proc.stderr.read()}")
        line = proc.stdout.readline().rstrip("\n")
        if " HTTP 200 | " in line:
            lines.append(line)
        elif line:
            raise RuntimeError(f"unexpected line from the agent: {line}")
    return lines


def rss_of_running_agent(url: str, key: str, tray_display: str | None, *more: str) -> tuple[float, float]:
    """RSS and USS (bytes) of the real agent after 5 reports at a 1 s interval. USS is the memory
    only this process uses (what quitting it frees): RSS also counts shared libraries."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"DISPLAY": tray_display} if tray_display else {}
        args = ["--interval", "1", "--heartbeat-interval", "1", "--machine-id", f"rss-{bool(tray_display)}", *more]
        if not tray_display:
            args.append("--no-tray")
        proc = start_agent(url, key, agent_env(Path(tmp), **extra), *args)
        try:
            read_status_lines(proc, 5)
            memory = psutil.Process(proc.pid).memory_full_info()
            return memory.rss, memory.uss
        finally:
            stop_process(proc, timeout=20)


def rss_with_https(key: str) -> tuple[float, float] | None:
    """RSS and USS of the real agent headless against an https:// server, which makes it load the
    CA store (certifi's, or $SSL_CERT_FILE's, plus the CA bundle): a stand-in TLS server that
    answers {"ok": true}, with a private CA given as --ca-bundle. None without openssl."""
    import shutil

    from agent_helpers import make_private_ca, serve_tls

    if not shutil.which("openssl"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        key_pem, cert = make_private_ca(Path(tmp))
        with serve_tls(key_pem, cert) as url:
            return rss_of_running_agent(url, key, None, "--ca-bundle", str(cert))


CYCLE_DRIVER = textwrap.dedent("""
    import json, sys, time, dataclasses, psutil
    from desktop_agent.config import AgentConfig
    from desktop_agent.queue import ReportQueue
    from desktop_agent.reporter import Reporter
    from desktop_agent.service import AgentService

    url, key, cycles, state = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    base = AgentConfig(server=url, token=key, machine_id="cycle-0")
    reporter = Reporter(url, key)
    service = AgentService(base, reporter, ReportQueue(state + "/queue"), state_dir=state,
                           printer=lambda line: None)
    me = psutil.Process()
    time.sleep(0.5)  # a CPU window for the first reading

    def run(first, last):
        for i in range(first, last):
            service.config = dataclasses.replace(base, machine_id=f"cycle-{i % 200}")
            line = service.report_cycle()
            if " OK HTTP 200 " not in line:
                sys.exit("cycle %d not accepted: %s" % (i, line))

    warm = min(100, cycles)
    run(0, warm)
    rss_warm = me.memory_info().rss
    # CPU per cycle in rounds of 100: other work on the machine inflates some rounds, so the
    # median and the best round are both given.
    rounds, rss_per_1000 = [], []
    for first in range(warm, cycles, 100):
        cpu0 = time.process_time()
        run(first, min(cycles, first + 100))
        rounds.append((time.process_time() - cpu0) / (min(cycles, first + 100) - first))
        if min(cycles, first + 100) % 1000 == 0:
            rss_per_1000.append(me.memory_info().rss)  # the trend: settling, or a leak
    rounds.sort()
    rss_end = me.memory_info().rss
    cpu0 = time.process_time()
    for i in range(200):
        service.config = dataclasses.replace(base, machine_id=f"cycle-{i % 200}")
        outcome = service.heartbeat()
        if not outcome.ok:
            sys.exit("heartbeat %d not accepted: %s" % (i, outcome.error))
    cpu_per_ping = (time.process_time() - cpu0) / 200
    print(json.dumps({"rss_after_warmup": rss_warm, "rss_after_all": rss_end, "rss_per_1000": rss_per_1000,
                      "cpu_per_cycle": rounds[len(rounds) // 2], "cpu_per_cycle_best_round": rounds[0],
                      "cpu_per_heartbeat": cpu_per_ping}))
""")


def cycles(url: str, key: str, count: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [PYTHON, "-c", CYCLE_DRIVER, url, key, str(count), tmp],
            cwd=REPO_ROOT,
            env=agent_env(Path(tmp)),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cycle driver failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout)


def idle_cpu(url: str, key: str, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_agent(url, key, agent_env(Path(tmp)), "--no-tray", "--machine-id", "idle")
        try:
            read_status_lines(proc, 1)
            me = psutil.Process(proc.pid)
            start_cpu, start = sum(me.cpu_times()[:2]), time.monotonic()
            time.sleep(seconds)
            used, wall = sum(me.cpu_times()[:2]) - start_cpu, time.monotonic() - start
            return {
                "seconds": wall,
                "cpu_seconds": used,
                "percent_of_core": 100 * used / wall,
                "rss": me.memory_info().rss,
            }
        finally:
            stop_process(proc, timeout=20)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, psutil {psutil.__version__}"
    )


def packaged_rss(program: Path, url: str, key: str, results: dict) -> None:
    """RSS of the packaged agent (PyInstaller, one folder), headless and with the tray."""
    global AGENT
    AGENT = [str(program)]
    try:
        results["packaged_rss_headless"], _ = rss_of_running_agent(url, key, None)
        print(f"packaged agent ({program}): RSS headless {results['packaged_rss_headless'] / MB:.1f} MB")
        from agent_helpers import VirtualDesktop

        if not VirtualDesktop.missing_tools():
            desktop = VirtualDesktop()
            try:
                results["packaged_rss_tray"], _ = rss_of_running_agent(url, key, desktop.display)
            finally:
                desktop.close()
            print(f"packaged agent: RSS with tray {results['packaged_rss_tray'] / MB:.1f} MB")
    finally:
        AGENT = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--agent-python", help="interpreter with only the agent extra (default: make a venv)")
    parser.add_argument(
        "--packaged",
        type=Path,
        metavar="PROGRAM",
        help="also measure the RSS of this packaged agent (make agent-dist: dist/dashfleet-agent/"
        "dashfleet-agent), as IT installs it",
    )
    args = parser.parse_args()
    if args.cycles < 200:  # the first 100 warm up; CPU is measured in rounds of 100 after them
        parser.error("--cycles must be at least 200 (100 to warm up, then rounds of 100)")
    global PYTHON, AGENT
    results: dict = {"machine": machine(), "load_average_at_start": os.getloadavg()}
    print(f"machine: {results['machine']}; load average {results['load_average_at_start']}")

    with running_dashfleet("agent") as (server, key):
        results["rss_headless_project_venv"], _ = rss_of_running_agent(server.base_url, key, None)
        PYTHON = agent_only_python(args.agent_python)
        results["rss_headless"], results["uss_headless"] = rss_of_running_agent(server.base_url, key, None)
        print(
            f"RSS headless: {results['rss_headless'] / MB:.1f} MB ({results['rss_headless'] / MIB:.1f} MiB), "
            f"USS {results['uss_headless'] / MB:.1f} MB; in the project venv "
            f"{results['rss_headless_project_venv'] / MB:.1f} MB"
        )

        https = rss_with_https(key)
        if https:
            results["rss_headless_https"], results["uss_headless_https"] = https
            print(
                f"RSS headless, https:// server: {https[0] / MB:.1f} MB ({https[0] / MIB:.1f} MiB), "
                f"USS {https[1] / MB:.1f} MB"
            )
        else:
            print("RSS headless, https:// server: skipped (openssl not installed)")

        from agent_helpers import VirtualDesktop

        missing = VirtualDesktop.missing_tools()
        if missing:
            print(f"RSS with tray: skipped ({', '.join(missing)} not installed)")
        else:
            desktop = VirtualDesktop()
            try:
                results["rss_tray"], results["uss_tray"] = rss_of_running_agent(server.base_url, key, desktop.display)
            finally:
                desktop.close()
            print(
                f"RSS with tray: {results['rss_tray'] / MB:.1f} MB ({results['rss_tray'] / MIB:.1f} MiB), "
                f"USS {results['uss_tray'] / MB:.1f} MB"
            )

        if args.packaged:
            packaged_rss(args.packaged.resolve(), server.base_url, key, results)

        c = results["cycles"] = cycles(server.base_url, key, args.cycles) | {"count": args.cycles}
        growth = c["rss_after_all"] - c["rss_after_warmup"]
        print(
            f"{args.cycles} report cycles: CPU {c['cpu_per_cycle'] * 1000:.2f} ms per cycle (median of rounds "
            f"of 100; best round {c['cpu_per_cycle_best_round'] * 1000:.2f} ms), "
            f"{c['cpu_per_heartbeat'] * 1000:.2f} ms per heartbeat; RSS {c['rss_after_warmup'] / MB:.1f} MB after "
            f"100, {c['rss_after_all'] / MB:.1f} MB after {args.cycles} (growth {growth / 1024:+.0f} KiB)"
        )
        if len(c["rss_per_1000"]) > 1:
            print("RSS every 1,000 cycles (KiB): " + ", ".join(f"{rss // 1024:,}" for rss in c["rss_per_1000"]))

        if args.idle_seconds > 0:
            idle = results["idle"] = idle_cpu(server.base_url, key, args.idle_seconds)
            print(
                f"default interval (60 s / 30 s) over {idle['seconds']:.0f} s: {idle['cpu_seconds']:.3f} CPU s = "
                f"{idle['percent_of_core']:.4f} % of one core; RSS {idle['rss'] / MB:.1f} MB"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
