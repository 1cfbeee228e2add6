"""The real tray (desktop_agent.tray.Tray) over a real AgentService whose state a test sets, line by
line on stdin, as the service's own loops would after a reading:

    disk 92        a reading with the disk 92% full (CPU 5%, RAM 30%), the server answering
    paused         the person paused the agent
    unreachable    the server stopped answering
    quit           Quit

Each command is answered with `SET <command>` once the service has the new state. The service's
loops are not started: the test decides the readings (a full disk cannot be made on demand), and
everything downstream of the state (icon, tooltip, menu, warnings, notifications) is the agent's.

    python tray_driver.py [--warnings] [--language en|fr]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
from datetime import datetime
from pathlib import Path

from common.health import compute_health
from desktop_agent.config import AgentConfig
from desktop_agent.reporter import Reporter
from desktop_agent.sampler import take_sample
from desktop_agent.service import AgentService
from desktop_agent.tray import Tray


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warnings", action="store_true")
    parser.add_argument("--language", default="en")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = AgentConfig(
        server="http://127.0.0.1:9",
        token="not-used",
        machine_id="tray-driver",
        local_warnings=args.warnings,
        language=args.language,
    )
    service = AgentService(config, Reporter(config.server, config.token), None)
    base = take_sample()

    def commands() -> None:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                service.stop()
                return
            if words[0] == "disk":
                report = dict(base.report, cpu_percent=5.0, ram_percent=30.0, disk_percent=float(words[1]))
                health = compute_health(5.0, 30.0, float(words[1]))
                report["health"] = health.as_dict()
                sample = dataclasses.replace(base, report=report, health=health)
                service._update(sample=sample, connected=True, paused=False, last_report_at=datetime.now())
            elif words[0] == "paused":
                service._update(paused=True)
            elif words[0] == "unreachable":
                service._update(connected=False, paused=False)
            print("SET", line.strip(), flush=True)

    threading.Thread(target=commands, daemon=True).start()
    Tray(service, Path(".")).run()


if __name__ == "__main__":
    main()
