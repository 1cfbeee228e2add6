"""The real agent says goodbye on a clean stop: the server lists its machine as away, not offline."""

from __future__ import annotations

import pytest
from agent_helpers import machine, wait_until

pytestmark = pytest.mark.slow


def test_sigterm_says_goodbye_and_kill_9_does_not(agent_server, fleet_org, machine_id, run_agent):
    def args(machine: str) -> list[str]:
        return ["--server", agent_server.url, "--token", fleet_org.api_key, "--machine-id", machine, "--no-tray"]

    agent = run_agent(*args(machine_id), "--interval", "1")
    wait_until(lambda: machine(fleet_org, machine_id), "the first report")
    assert machine(fleet_org, machine_id)["away"] is None
    assert agent.stop() == 0  # SIGTERM, as a service manager (or a shutdown) sends it
    away = machine(fleet_org, machine_id)["away"]
    assert away is not None and away["expected_back"] is None, agent.output()

    crashed = f"{machine_id}-crash"
    agent = run_agent(*args(crashed), "--interval", "1")
    wait_until(lambda: machine(fleet_org, crashed), "the first report")
    agent.kill9()  # a crash says nothing: the machine will go offline, and may raise an alert
    assert machine(fleet_org, crashed)["away"] is None
