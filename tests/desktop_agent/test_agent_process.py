"""The real agent process (`python -m desktop_agent`) against the real server, as IT runs it."""

from __future__ import annotations

import platform

import pytest
from agent_helpers import (
    STATUS_LINE,
    free_port,
    history,
    machine,
    queued_reports,
    run_agent_once,
    serve_on_port,
    server_is_down,
    wait_until,
)

pytestmark = pytest.mark.slow


def agent_args(server_url: str, token: str, machine_id: str, *more: str) -> list[str]:
    return ["--server", server_url, "--token", token, "--machine-id", machine_id, "--no-tray", *more]


def cpu_of(line: str) -> float:
    return float(STATUS_LINE.match(line)["cpu"].rstrip("%"))


def one_line(text: str) -> str:
    assert text.count("\n") == 1 and "Traceback" not in text, text
    return text.strip()


# --- --once ---


def test_once_sends_a_report_and_a_heartbeat_and_prints_the_status_line(
    agent_dirs, agent_server, fleet_org, machine_id
):
    done = run_agent_once(agent_dirs, *agent_args(agent_server.url, fleet_org.api_key, machine_id, "--once"))
    assert done.returncode == 0, done.stderr
    line = one_line(done.stdout)
    match = STATUS_LINE.match(line)
    assert match and match["outcome"] == "OK HTTP 200" and match["os"] == platform.system(), line

    stored = machine(fleet_org, machine_id)
    assert stored["machine_id"] == machine_id  # quotes and '<' travel exactly as given
    assert stored["last_ping"] is not None and stored["status"] == "online"
    report = stored["report"]
    assert (
        f"CPU {report['cpu_percent']:.1f}% RAM {report['ram_percent']:.1f}% Disk {report['disk_percent']:.1f}%" in line
    )
    assert f"Score {report['health']['score']:.0f}/100" in line
    assert report["system"]["os"] == platform.system()
    assert stored["hardware_id"] == report["system"]["hardware_id"] and len(stored["hardware_id"]) == 32
    assert len(history(fleet_org, machine_id)) == 1


def test_once_with_a_refused_key_fails_in_one_line_and_stores_nothing(agent_dirs, agent_server, fleet_org, machine_id):
    done = run_agent_once(agent_dirs, *agent_args(agent_server.url, "api_" + "x" * 43, machine_id, "--once"))
    assert done.returncode == 1
    assert one_line(done.stderr) == "dashfleet-agent: error: report: HTTP 401 Unauthorized"
    assert STATUS_LINE.match(one_line(done.stdout))["outcome"] == "FAILED (HTTP 401 Unauthorized)"
    assert machine(fleet_org, machine_id) is None


def test_once_with_a_key_that_may_only_read_fails(agent_dirs, agent_server, fleet_org, machine_id):
    read_only = agent_server.make_key(fleet_org.name, "read")["api_key"]
    done = run_agent_once(agent_dirs, *agent_args(agent_server.url, read_only, machine_id, "--once"))
    assert done.returncode == 1 and "HTTP 403" in one_line(done.stderr)
    assert machine(fleet_org, machine_id) is None


def test_once_against_an_unreachable_server_fails_in_one_line(agent_dirs):
    url = "http://127.0.0.1:9"  # the discard port: nothing listens there
    assert server_is_down(url)
    done = run_agent_once(agent_dirs, *agent_args(url, "api_" + "x" * 43, "pc", "--once"))
    assert done.returncode == 1
    assert one_line(done.stderr).startswith("dashfleet-agent: error: report: server unreachable (")


def test_a_file_that_is_not_a_ca_bundle_is_a_configuration_error(agent_dirs, agent_server, tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    done = run_agent_once(agent_dirs, *agent_args(agent_server.url, "api_x", "pc", "--once", "--ca-bundle", str(bogus)))
    assert done.returncode == 2 and "holds no usable PEM certificate" in one_line(done.stderr)


# --- the long-running agent ---


def test_reports_and_heartbeats_on_their_own_timers(agent_dirs, agent_server, fleet_org, machine_id, run_agent):
    # No DISPLAY and no --no-tray: the tray cannot start, so the agent says so and runs headless.
    args = agent_args(agent_server.url, fleet_org.api_key, machine_id, "--interval", "1", "--heartbeat-interval", "1")
    args.remove("--no-tray")
    agent = run_agent(*args)
    agent.wait_for_lines(2, "OK HTTP 200")

    first_ping = wait_until(lambda: (machine(fleet_org, machine_id) or {}).get("last_ping"), "a heartbeat")
    wait_until(lambda: machine(fleet_org, machine_id)["last_ping"] > first_ping, "a later heartbeat")

    assert agent.stop() == 0
    assert "running headless" in agent_dirs.log_file.read_text()
    assert not any("Traceback" in line for line in agent.errors), agent.output()
    lines = agent.status_lines()
    assert all(STATUS_LINE.match(line)["outcome"] == "OK HTTP 200" for line in lines), agent.output()
    assert len(history(fleet_org, machine_id)) == len(lines)


def test_a_second_agent_for_the_same_machine_is_refused(agent_dirs, agent_server, fleet_org, machine_id, run_agent):
    args = agent_args(agent_server.url, fleet_org.api_key, machine_id, "--interval", "1")
    first = run_agent(*args)
    first.wait_for_lines(1)
    second = run_agent(*args)
    assert second.proc.wait(timeout=30) == 1
    second.stop()
    assert "another dashfleet-agent is already running" in one_line("\n".join(second.errors) + "\n")
    assert first.proc.poll() is None


def stopped_server(server_factory):
    """An installation with an organisation (made by the CLI) that is not serving yet, and the URL
    it will have: start it with serve_on_port(server, server.port)."""
    server = server_factory.prepare(history_min_spacing_seconds=0)  # deliveries are counted in history
    org = server.org()
    server.port = free_port()
    server.url = f"http://127.0.0.1:{server.port}"
    assert server_is_down(server.url)
    return server, org


def test_the_queue_drains_oldest_first_when_the_server_comes_back(agent_dirs, server_factory, run_agent, machine_id):
    server, org = stopped_server(server_factory)
    agent = run_agent(*agent_args(server.url, org.api_key, machine_id, "--interval", "1"))
    queued = agent.wait_for_lines(3, "QUEUED")
    assert [STATUS_LINE.match(line)["outcome"].split()[1] for line in queued[:3]] == ["1", "2", "3"]

    serve_on_port(server, server.port)
    agent.wait_for_lines(1, "OK HTTP 200")
    assert agent.stop() == 0
    assert not any("Traceback" in line for line in agent.errors), agent.output()

    made = [cpu_of(line) for line in agent.status_lines()]  # one line per report, in order
    left = [report["cpu_percent"] for report in queued_reports(agent_dirs)]
    assert made[len(made) - len(left) :] == left  # anything still queued is the newest
    # Everything else arrived exactly once, oldest first.
    assert [s["cpu_percent"] for s in history(org, machine_id)] == made[: len(made) - len(left)]


def test_kill_9_loses_nothing_and_sends_nothing_twice(agent_dirs, server_factory, run_agent, machine_id):
    server, org = stopped_server(server_factory)
    args = agent_args(server.url, org.api_key, machine_id, "--interval", "1")
    crashed = run_agent(*args)
    crashed.wait_for_lines(3, "QUEUED")
    crashed.kill9()
    # What the killed agent had made is exactly what its queue holds (read now that it is dead).
    before = [report["cpu_percent"] for report in queued_reports(agent_dirs)]
    assert len(before) >= len(crashed.status_lines()) >= 3

    serve_on_port(server, server.port)
    restarted = run_agent(*args)
    restarted.wait_for_lines(1, "OK HTTP 200")
    assert restarted.stop() == 0

    made = before + [cpu_of(line) for line in restarted.status_lines()]
    left = [report["cpu_percent"] for report in queued_reports(agent_dirs)]
    assert made[len(made) - len(left) :] == left
    assert [s["cpu_percent"] for s in history(org, machine_id)] == made[: len(made) - len(left)]


def test_reports_an_earlier_agent_queued_in_sqlite_are_sent_after_the_upgrade(
    agent_dirs, agent_server, fleet_org, machine_id, run_agent
):
    """Earlier agents queued in one SQLite file; an upgrade must not strand what waits there."""
    import json
    import sqlite3
    from pathlib import Path

    from desktop_agent.__main__ import queue_path
    from desktop_agent.config import AgentConfig
    from desktop_agent.sampler import take_sample

    config = AgentConfig(server=agent_server.url, token=fleet_org.api_key, machine_id=machine_id)
    old = queue_path(agent_dirs.state_home / "dashfleet", config).with_suffix(".sqlite3")
    old.parent.mkdir(parents=True)
    waiting = [dict(take_sample(str(old.parent)).as_payload(), cpu_percent=cpu) for cpu in (1.5, 2.5, 3.5)]
    db = sqlite3.connect(old)
    db.executescript(
        "CREATE TABLE reports (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);"
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    )
    db.executemany("INSERT INTO reports (body) VALUES (?)", [(json.dumps(r),) for r in waiting])
    db.commit()
    db.close()

    agent = run_agent(*agent_args(agent_server.url, fleet_org.api_key, machine_id, "--interval", "30"))
    agent.wait_for_lines(1, "OK HTTP 200")
    assert agent.stop() == 0
    samples = [s["cpu_percent"] for s in history(fleet_org, machine_id)]
    assert samples[:3] == [1.5, 2.5, 3.5] and len(samples) == 4  # the waiting ones first, then its own
    assert not Path(old).exists() and queued_reports(agent_dirs) == []
    assert "moved 3 queued report(s)" in agent_dirs.log_file.read_text()
