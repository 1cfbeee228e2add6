"""The agent's memory with messages and commands: RSS of the real headless agent against a server
with both features off (the baseline, measured in the same run), with both on (the inbox thread
holding its long poll), and with both on after it showed a message and ran report_now and an
allow-listed script (the command worker, commands.py and allowlist.py loaded, the store written).

    .venv/bin/python bench/agent_inbox_footprint.py [--agent-python PYTHON] [--rounds 3]

The agent runs on an install with only the `agent` extra (agent_footprint.py's venv, made once),
at a 1 s report and heartbeat interval; its RSS is read after 5 accepted reports (6 after the
commands). Each case is measured --rounds times, the cases interleaved, and the median given.
Figures go to docs/benchmarks.md ("Agent: messages and commands").
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import agent_footprint as footprint
import httpx
import psutil
from _servers import admin_cli, child_env, running, stop_process, temp_workdir

MB = 1_000_000
FEATURES_ON = {"DASHFLEET_FEATURE_MESSAGING": "true", "DASHFLEET_FEATURE_COMMANDS": "true"}


def read_until(proc: subprocess.Popen, reports: int, timeout: float = 120) -> None:
    """Reads the agent's stdout until `reports` accepted reports (other lines, messages, pass)."""
    seen, deadline = 0, time.monotonic() + timeout
    while seen < reports:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the agent gave {seen} of {reports} reports; stderr: {proc.stderr.read()}")
        if " OK HTTP 200 | " in proc.stdout.readline():
            seen += 1


def wait_final(url: str, admin_key: str, what: str, item_id: str, states: tuple[str, ...]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/api/{what}/{item_id}", headers={"Authorization": f"Bearer {admin_key}"}).json()
        state = answer["deliveries"][0]["state"]
        if state in states:
            return state
        time.sleep(0.2)
    raise RuntimeError(f"{what} {item_id} never reached {states}")


def measure(url: str, key: str, admin_key: str | None, machine: str) -> float:
    """RSS (bytes) of one agent; with admin_key, after a message, report_now and run_script."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = root / "scripts" / "hello.sh"
        script.parent.mkdir(mode=0o755)
        script.write_text("#!/bin/sh\necho hello\n")
        script.chmod(0o755)
        listing = root / "site" / "dashfleet" / "allowlist.toml"
        listing.parent.mkdir(parents=True)
        digest = hashlib.sha256(script.read_bytes()).hexdigest()
        listing.write_text(f'[scripts.hello]\npath = "{script}"\nsha256 = "{digest}"\n')
        args = ["--interval", "1", "--heartbeat-interval", "1", "--machine-id", machine, "--no-tray"]
        proc = footprint.start_agent(url, key, footprint.agent_env(root), *args)
        try:
            read_until(proc, 5 if admin_key is None else 2)
            if admin_key is not None:
                auth = {"Authorization": f"Bearer {admin_key}"}
                sent = [
                    ("messages", {"title": "Reboot tonight", "body": "Save your work.", "machine_ids": [machine]}),
                    ("commands", {"kind": "report_now", "args": {}, "machine_ids": [machine]}),
                    (
                        "commands",
                        {"kind": "run_script", "args": {"name": "hello", "args": []}, "machine_ids": [machine]},
                    ),
                ]
                for what, body in sent:
                    answer = httpx.post(f"{url}/api/{what}", json=body, headers=auth).json()
                    item_id = answer["message_id" if what == "messages" else "command_id"]
                    final = ("displayed",) if what == "messages" else ("succeeded", "failed", "timed_out")
                    state = wait_final(url, admin_key, what, item_id, final)
                    if state not in ("displayed", "succeeded"):
                        raise RuntimeError(f"{body} ended {state}")
                read_until(proc, 4)
            return psutil.Process(proc.pid).memory_info().rss
        finally:
            stop_process(proc, timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-python", help="interpreter with only the agent extra (default: make a venv)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    footprint.PYTHON = footprint.agent_only_python(args.agent_python)
    print(f"machine: {footprint.machine()}; load average {psutil.getloadavg()}")
    cmd = [sys.executable, "-m", "admin", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    results: dict[str, list[float]] = {"off": [], "on, idle": [], "on, after a message and 2 commands": []}
    with temp_workdir("inbox-off") as off_dir, temp_workdir("inbox-on") as on_dir:
        off_key = admin_cli(off_dir, None, "org", "create", "bench")["api_key"]
        on_key = admin_cli(on_dir, FEATURES_ON, "org", "create", "bench")["api_key"]
        admin_key = admin_cli(
            on_dir, FEATURES_ON, "key", "create", "--org", "bench", "--scope", "admin", "--scope", "read"
        )["api_key"]
        with running("dashfleet", cmd, off_dir) as off, running("dashfleet", cmd, on_dir, child_env(FEATURES_ON)) as on:
            for round_ in range(args.rounds):
                results["off"].append(measure(off.base_url, off_key, None, f"off-{round_}"))
                results["on, idle"].append(measure(on.base_url, on_key, None, f"idle-{round_}"))
                results["on, after a message and 2 commands"].append(
                    measure(on.base_url, on_key, admin_key, f"used-{round_}")
                )
    base = statistics.median(results["off"])
    for case, values in results.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v / MB:.1f}" for v in values)
        print(
            f"RSS headless, features {case}: {median / MB:.1f} MB (rounds {rounds}); {(median - base) / 1024:+.0f} KiB"
        )


if __name__ == "__main__":
    main()
