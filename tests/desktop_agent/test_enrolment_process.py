"""The real agent enrols with an enrol key, keeps its own key, and enrols again only when it must.

Real agent processes (`python -m desktop_agent`) against the real server; keys made with the CLI.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_helpers import REPO_ROOT, machine, run_agent_once, wait_until

pytestmark = pytest.mark.slow
KEYRING_BACKEND_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def enrol_key(agent_server, fleet_org) -> dict:
    return agent_server.make_key(fleet_org.name, "enroll")


def bound_keys(server, org) -> list[dict]:
    """The organisation's machine keys (revoked ones too), as `key list` shows them."""
    return [k for k in server.cli_json("key", "list", "--org", org.name)["keys"] if k["machine_id"]]


def enrol_args(server_url: str, machine_id: str, *more: str) -> list[str]:
    return ["--server", server_url, "--machine-id", machine_id, "--no-tray", *more]


def key_files(agent_dirs) -> list[Path]:
    return sorted((agent_dirs.state_home / "dashfleet").glob("machine-key-*"))


def test_enrols_once_keeps_its_key_private_and_never_enrols_again(
    agent_dirs, agent_server, fleet_org, enrol_key, machine_id, tmp_path
):
    token_file = tmp_path / "enroll-token"
    token_file.write_text(enrol_key["api_key"] + "\n")
    args = enrol_args(agent_server.url, machine_id, "--enroll-token-file", str(token_file), "--once")
    first = run_agent_once(agent_dirs, *args)
    assert first.returncode == 0, first.stderr
    assert machine(fleet_org, machine_id)["report"]["cpu_percent"] >= 0

    (stored,) = key_files(agent_dirs)  # no OS credential store here: a file only its user reads
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stored.read_text().startswith("api_") and stored.read_text() != enrol_key["api_key"]
    mine = [k for k in bound_keys(agent_server, fleet_org) if k["machine_id"] == machine_id]
    assert len(mine) == 1 and mine[0]["revoked_at"] is None and mine[0]["scopes"] == ["agent"]
    assert enrol_key["api_key"] not in agent_dirs.log_file.read_text()

    # Restarts use the stored key: no second enrolment (which would have revoked the first key).
    for _ in range(2):
        again = run_agent_once(agent_dirs, *args)
        assert again.returncode == 0, again.stderr
    assert [k for k in bound_keys(agent_server, fleet_org) if k["machine_id"] == machine_id] == mine
    assert agent_dirs.log_file.read_text().count("enrolled") == 1
    # Once enrolled, the machine's key wins over an organisation key given as well.
    with_org_key = run_agent_once(agent_dirs, *args, "--token", fleet_org.api_key)
    assert with_org_key.returncode == 0, with_org_key.stderr
    assert agent_dirs.log_file.read_text().count("using this machine's own key") == 3


def test_the_enrol_key_comes_from_stdin_the_environment_or_the_config_file(
    agent_dirs, agent_server, fleet_org, enrol_key, machine_id
):
    token = enrol_key["api_key"]
    ways = {
        "stdin": ([f"{machine_id}-stdin", "--enroll-token-file", "-"], {}, token + "\n"),
        "env": ([f"{machine_id}-env"], {"DASHFLEET_ENROLL_TOKEN": token}, None),
        "file": ([f"{machine_id}-file"], {}, None),
    }
    agent_dirs.user_config_file.parent.mkdir(parents=True)
    agent_dirs.user_config_file.write_text(f'enroll_token = "{token}"\n')
    for label, (more, env, stdin) in ways.items():
        done = subprocess.run(
            [sys.executable, "-m", "desktop_agent", *enrol_args(agent_server.url, more[0], *more[1:], "--once")],
            cwd=REPO_ROOT,
            env=agent_dirs.env(**env),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (label, done.stderr)
        assert machine(fleet_org, more[0]) is not None, label
    bound = {k["machine_id"] for k in bound_keys(agent_server, fleet_org)}
    assert {f"{machine_id}-{label}" for label in ways} <= bound


def test_a_missing_or_empty_token_file_is_a_clear_error(agent_dirs, agent_server, machine_id, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path in (tmp_path / "missing", empty):
        done = run_agent_once(agent_dirs, *enrol_args(agent_server.url, machine_id, "--enroll-token-file", str(path)))
        assert done.returncode == 2 and "enroll-token-file" in done.stderr and "Traceback" not in done.stderr
    assert key_files(agent_dirs) == []


def test_the_key_goes_to_the_os_credential_store_where_there_is_one(
    agent_dirs, agent_server, fleet_org, enrol_key, machine_id, tmp_path
):
    store = tmp_path / "keyring.json"
    env = agent_dirs.env(
        PYTHON_KEYRING_BACKEND="keyring_backend.JsonFileKeyring",
        TEST_KEYRING_FILE=str(store),
        PYTHONPATH=f"{REPO_ROOT}:{KEYRING_BACKEND_DIR}",
        DASHFLEET_ENROLL_TOKEN=enrol_key["api_key"],
    )
    args = enrol_args(agent_server.url, machine_id, "--once")
    for _ in range(2):  # enrols, then reads the key back from the store
        done = run_agent_once(agent_dirs, *args, env=env)
        assert done.returncode == 0, done.stderr
    assert "api_" in store.read_text()
    assert [p.name.endswith(".in-keyring") for p in key_files(agent_dirs)] == [True]  # a marker, no key
    assert "api_" not in key_files(agent_dirs)[0].read_text()
    assert len([k for k in bound_keys(agent_server, fleet_org) if k["machine_id"] == machine_id]) == 1


def test_a_refused_key_enrols_again_once_and_never_loops(agent_dirs, agent_server, fleet_org, run_agent, machine_id):
    made = agent_server.make_key(fleet_org.name, "enroll")
    env = agent_dirs.env(DASHFLEET_ENROLL_TOKEN=made["api_key"])
    agent = run_agent(
        *enrol_args(agent_server.url, machine_id, "--interval", "1", "--heartbeat-interval", "1"), env=env
    )
    agent.wait_for_lines(1, "OK HTTP 200")
    admin = agent_server.make_key(fleet_org.name, "admin")["api_key"]

    # An admin deletes the machine: its key is revoked; the agent enrols again and carries on.
    deleted = fleet_org.request("DELETE", "/api/fleet/machine", params={"machine_id": machine_id}, key=admin)
    assert deleted.status_code == 200
    wait_until(lambda: "enrolling again" in agent_dirs.log_file.read_text(), "a re-enrolment")
    # At once, not after the enrolment backoff (a minute): the key had worked, so this is a revoked
    # key, not a server that refuses every key it hands out. (The key that worked was first told
    # to the credentials only by heartbeats; a report that got through first did not count.)
    wait_until(lambda: machine(fleet_org, machine_id), "the machine back in the fleet", timeout=20)
    ok_before = len(agent.status_lines("OK"))
    agent.wait_for_lines(ok_before + 2, "OK HTTP 200")

    # Now the enrol key is revoked too and the machine deleted again: the agent tries once, then
    # waits its backoff (a minute) instead of asking in a loop.
    assert agent_server.cli("key", "revoke", "--org", fleet_org.name, str(made["key_id"])).returncode == 0
    assert fleet_org.request("DELETE", "/api/fleet/machine", params={"machine_id": machine_id}, key=admin).status_code
    wait_until(lambda: "enrolment failed" in agent_dirs.log_file.read_text(), "a refused enrolment")
    time.sleep(8)  # eight report and heartbeat periods
    log = agent_dirs.log_file.read_text()
    attempts = [line for line in log.splitlines() if "WARNING desktop_agent.credentials: enrolment failed" in line]
    assert len(attempts) == 1, log[-3000:]
    assert log.count("enrolling again") == 2
    assert machine(fleet_org, machine_id) is None
    assert agent.proc.poll() is None  # still running, reports queued
    assert agent.stop() == 0
