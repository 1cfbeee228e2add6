"""What listening to logind costs the agent: RSS of the real headless agent with a system D-Bus
(DBUS_SYSTEM_BUS_ADDRESS: a private dbus-daemon, no logind on it, so no lock is granted) against
the same agent without one (nothing imported, no thread), the cases interleaved.

    .venv/bin/python bench/agent_power_footprint.py [--agent-python PYTHON] [--rounds 3] [--seconds 8]

The agent reports to an address that refuses connections (its reports queue on disk), at a 5 s
interval; its RSS is read after --seconds. Only the difference between the two cases is the
figure: the absolute RSS depends on the interpreter's install (see agent_footprint.py).
Figures go to docs/benchmarks.md ("Agent: sleep and shutdown").
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000


def system_bus() -> tuple[subprocess.Popen, str]:
    folder = Path(tempfile.mkdtemp(prefix="dashfleet-bench-bus-"))
    config = folder / "bus.conf"
    config.write_text(
        "<busconfig><type>session</type>"
        f"<listen>unix:dir={folder}</listen><auth>EXTERNAL</auth>"
        '<policy context="default"><allow send_destination="*" eavesdrop="true"/>'
        '<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>'
    )
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def agent_rss(python: str, extra_env: dict[str, str], seconds: float) -> tuple[float, int]:
    home = tempfile.mkdtemp(prefix="dashfleet-bench-agent-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHFLEET_", "DBUS_"))}
    env.update(XDG_CONFIG_HOME=home, XDG_STATE_HOME=home, XDG_CACHE_HOME=home, PYTHONPATH=str(ROOT), **extra_env)
    args = ["--server", "http://127.0.0.1:9", "--token", "api_" + "x" * 43, "--machine-id", "bench-power"]
    proc = subprocess.Popen(
        [python, "-m", "desktop_agent", *args, "--no-tray", "--interval", "5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(seconds)
        process = psutil.Process(proc.pid)
        return process.memory_info().rss / MB, process.num_threads()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    if not shutil.which("dbus-daemon"):
        print("skipped: needs dbus-daemon (Debian: dbus)")
        return
    subprocess.run([args.agent_python, "-m", "compileall", "-q", str(ROOT / "desktop_agent"), str(ROOT / "common")])
    bus, address = system_bus()
    results: dict[str, list[tuple[float, int]]] = {"no system bus": [], "system bus": []}
    try:
        for _ in range(args.rounds):
            results["no system bus"].append(agent_rss(args.agent_python, {}, args.seconds))
            results["system bus"].append(
                agent_rss(args.agent_python, {"DBUS_SYSTEM_BUS_ADDRESS": address}, args.seconds)
            )
    finally:
        bus.terminate()
        bus.wait(timeout=10)
    medians = {label: statistics.median(rss for rss, _ in runs) for label, runs in results.items()}
    for label, runs in results.items():
        print(
            f"{label}: RSS {[round(rss, 2) for rss, _ in runs]} MB, threads {runs[0][1]}; median {medians[label]:.2f} MB"
        )
    print(f"cost of the logind watcher: {medians['system bus'] - medians['no system bus']:+.2f} MB")


if __name__ == "__main__":
    main()
