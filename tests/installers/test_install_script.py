"""An install link used for real: the Linux command an admin pastes, run as root on this machine
against a real server that serves the wheel and the .deb it built (installers/server/build-downloads.sh).

- Debian path: the script installs the .deb through apt, writes the configuration with the link's
  enrol key (never on a command line: every program it starts is traced with strace), the agent
  enrols and reports; a second run updates in place; then the package is purged (also when the
  test fails).
- Venv path (other distributions): into a temporary root, then the installed agent enrols and reports.
- A tampered package, an expired link and a revoked link install nothing and say why.

Needs root, dpkg and apt (CI runs as root on Debian); refuses to touch a machine where
dashfleet-agent is installed or configured by someone else.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

from common.version import __version__
from tests.helpers.servers import free_port

# Building the packages (PyInstaller, dpkg-deb) and a venv from the package index take minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200), pytest.mark.machine_wide]

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "dashfleet-agent"
CONFIG = Path("/etc/xdg/dashfleet/agent.toml")
BUILD_TIMEOUT_SECONDS = 900
INSTALL_TIMEOUT_SECONDS = 600


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kwargs)


def installed() -> bool:
    status = run("dpkg-query", "-W", "-f=${Status}", PACKAGE)
    return status.returncode == 0 and "not-installed" not in status.stdout


def purge() -> None:
    subprocess.run(["dpkg", "--purge", PACKAGE], capture_output=True, timeout=300)


def clean_env(home: str) -> dict[str, str]:
    """What a root shell on a workstation has: no DASHFLEET_* of ours, no project venv first."""
    path = ":".join(p for p in os.environ["PATH"].split(":") if ".venv" not in p)
    return {"PATH": path, "HOME": home, "LANG": "C.UTF-8"}


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    if not shutil.which("dpkg-deb"):
        pytest.skip("dpkg-deb is missing: the .deb can only be built on Debian or Ubuntu")
    folder = tmp_path_factory.mktemp("downloads")
    done = subprocess.run(
        [str(REPO_ROOT / "installers/server/build-downloads.sh"), str(folder)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, f"build-downloads.sh failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    names = sorted(p.name for p in folder.iterdir())
    assert f"dashfleet-{__version__}-py3-none-any.whl" in names and any(n.endswith(".deb") for n in names), names
    return folder


@pytest.fixture(scope="module")
def install_server(module_server_factory, downloads):
    port = free_port()
    return module_server_factory(port=port, public_url=f"http://127.0.0.1:{port}", downloads_dir=str(downloads))


@pytest.fixture
def install_org(install_server):
    return install_server.org()


def make_link(server, org_name: str, *args: str) -> dict:
    return server.cli_json("install-link", "create", "--org", org_name, *args)


def linux_command(link: dict) -> str:
    command = link["commands"]["linux"]
    # The test server is plain http://, so the command allows it explicitly (else the script refuses).
    assert command.endswith("| sudo env DASHFLEET_ALLOW_HTTP=1 sh")
    # This machine is a root shell without sudo (as many Debian servers are): the same without it.
    return command if shutil.which("sudo") else command.replace("| sudo env ", "| env ")


def run_command(command: str, home: str, *, trace: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    argv = ["sh", "-c", command]
    if trace is not None:  # every program started, with its arguments
        argv = ["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o", str(trace), *argv]
    return subprocess.run(
        argv,
        env={**clean_env(home), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
    )


def enroll_key_in_config(path: Path) -> dict:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def agent_once(program: str, config: Path, home: str, machine_id: str) -> subprocess.CompletedProcess:
    """The installed agent, one report: with no stored key it enrols first."""
    env = {**clean_env(home), "XDG_STATE_HOME": f"{home}/state", "XDG_DATA_HOME": f"{home}/data"}
    return subprocess.run(
        [program, "--config", str(config), "--machine-id", machine_id, "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_enrolled_and_reported(org, machine_id: str, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert " OK HTTP 200 " in done.stdout, done.stdout
    [entry] = [m for m in org.fleet(q=machine_id)["data"] if m["machine_id"] == machine_id]
    assert entry["report"]["system"]["agent_version"] == __version__


@pytest.fixture
def clean_machine():
    if os.geteuid() != 0:
        pytest.skip("installing a .deb needs root (CI runs as root)")
    if not shutil.which("dpkg") or not shutil.which("apt-get"):
        pytest.skip("dpkg and apt-get are missing: the Debian path needs them")
    if installed() or CONFIG.exists():
        pytest.skip(f"{PACKAGE} is already installed or configured here; not touching it")
    try:
        yield
    finally:
        purge()  # even when the test failed halfway


def test_the_linux_command_installs_the_deb_enrols_reports_and_updates_in_place(
    clean_machine, install_server, install_org, tmp_path
):
    link = make_link(install_server, install_org.name, "--uses", "5")
    trace = tmp_path / "execve.trace"
    done = run_command(linux_command(link), str(tmp_path), trace=trace)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installing dashfleet-agent_" in done.stderr and "is installed and configured" in done.stderr
    assert installed()

    config = enroll_key_in_config(CONFIG)
    desktop = "mode: desktop" in run("debconf-show", PACKAGE).stdout
    kept = CONFIG.parent / "enroll-token"
    if desktop:
        # Every signed-in user's tray agent reads agent.toml on a desktop (a machine booting into
        # graphical.target, as this one may): root enrolled the machine at install, agent.toml
        # holds the machine's own key (0644), the enrol key is root's alone.
        assert set(config) == {"server", "token"} and config["server"] == install_server.url
        key = kept.read_text().strip()
        assert kept.stat().st_mode & 0o777 == 0o600 and CONFIG.stat().st_mode & 0o777 == 0o644
        assert key not in CONFIG.read_text()
        machine_id = socket.gethostname()  # the enrolled machine: the agent's default id
        bound = install_server.cli_json("key", "list", "--org", install_org.name)["keys"]
        assert [k["machine_id"] for k in bound if config["token"].startswith(k["prefix"])] == [machine_id]
    else:
        # Headless: root only; the service enrols by itself.
        assert config["server"] == install_server.url and "token" not in config
        key = config["enroll_token"]
        assert CONFIG.stat().st_mode & 0o777 == 0o600 and not kept.exists()
        machine_id = f"install-link-deb-{os.getpid()}"
    assert re.fullmatch(r"api_[A-Za-z0-9_-]{43}", key) and key != install_org.api_key
    # The key was on no program's command line: strace saw every execve of the whole run.
    started = trace.read_text()
    assert "apt-get" in started and "dpkg" in started, "the trace missed the install"
    assert key not in started, "the enrol key appeared on a command line"
    assert config.get("token", "-") not in started, "the machine key appeared on a command line"
    keys = install_server.cli_json("key", "list", "--org", install_org.name)["keys"]
    assert [k["scopes"] for k in keys if key.startswith(k["prefix"])] == [["enroll"]]

    # The agent the package installed (enrols with that key when headless, and) reports.
    assert_enrolled_and_reported(
        install_org, machine_id, agent_once("/usr/bin/dashfleet-agent", CONFIG, str(tmp_path / "h1"), machine_id)
    )

    # A second run on the same machine updates in place: reinstalled, same configuration (on a
    # desktop the same machine key, which the server still accepts), a use more.
    (tmp_path / "h2").mkdir()
    again = run_command(linux_command(link), str(tmp_path / "h2"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert installed() and enroll_key_in_config(CONFIG) == config
    [listed] = install_server.cli_json("install-link", "list", "--org", install_org.name)["links"]
    assert listed["used"] == 2

    purge()
    assert not installed() and not CONFIG.exists()


def test_a_tampered_package_is_refused_and_nothing_installed(
    clean_machine, install_server, install_org, downloads, tmp_path
):
    link = make_link(install_server, install_org.name)
    script = install_server.http.get(link["url"] + ".sh")
    assert script.status_code == 200
    [deb] = [p for p in downloads.iterdir() if p.suffix == ".deb"]
    original = deb.read_bytes()
    try:
        # Between the script and the download someone swaps the package (a mirror, a proxy).
        deb.write_bytes(original[:-16] + b"\0" * 16)
        path = tmp_path / "install.sh"
        path.write_text(script.text)
        done = run_command(f"sh {path}", str(tmp_path), DASHFLEET_ALLOW_HTTP="1")
    finally:
        deb.write_bytes(original)
    assert done.returncode == 1
    assert "does not match its SHA-256" in done.stderr and "refusing to install it" in done.stderr
    assert "nothing was installed" in done.stderr
    assert not installed() and not CONFIG.exists()


def expire(server, link_id: int) -> None:
    with sqlite3.connect(server.workdir / "data" / "dashfleet.db") as db:
        db.execute("UPDATE install_link SET expires_at = ? WHERE id = ?", (time.time() - 1, link_id))


def test_an_expired_or_revoked_link_installs_nothing(clean_machine, install_server, install_org, tmp_path):
    expired = make_link(install_server, install_org.name)
    expire(install_server, expired["link_id"])
    revoked = make_link(install_server, install_org.name)
    install_server.cli_json("install-link", "revoke", "--org", install_org.name, str(revoked["link_id"]))
    for link, why in ((expired, "has expired"), (revoked, "was revoked")):
        done = run_command(linux_command(link), str(tmp_path))
        assert done.returncode == 1, done.stdout + done.stderr
        assert why in done.stderr and "nothing was installed" in done.stderr
        assert not installed() and not CONFIG.exists()


def test_a_plain_http_server_is_refused_unless_allowed_explicitly(install_server, install_org, tmp_path):
    link = make_link(install_server, install_org.name)
    root = tmp_path / "root"
    # What someone gets who fetches the script without the allowance the server's command carries.
    command = linux_command(link).replace("env DASHFLEET_ALLOW_HTTP=1 ", "")
    for allowance in ({}, {"DASHFLEET_ALLOW_HTTP": "0"}, {"DASHFLEET_ALLOW_HTTP": "yes please"}):
        done = run_command(command, str(tmp_path), DASHFLEET_INSTALL_ROOT=str(root), **allowance)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "is plain http://" in done.stderr and "DASHFLEET_ALLOW_HTTP=1" in done.stderr, done.stderr
        assert "nothing was installed" in done.stderr and "downloading" not in done.stderr
        assert not root.exists(), "the refused script wrote something"


def test_the_venv_path_installs_into_a_prefix_and_the_agent_enrols(install_server, install_org, tmp_path):
    """What other distributions get (a virtual environment, a systemd unit, XDG autostart),
    installed under a temporary root; its dependencies come from the package index."""
    root = tmp_path / "root"
    link = make_link(install_server, install_org.name)
    done = run_command(
        linux_command(link),
        str(tmp_path),
        DASHFLEET_INSTALL_ROOT=str(root),
        DASHFLEET_INSTALL_METHOD="venv",
        DASHFLEET_AGENT_MODE="headless",  # this machine may boot into graphical.target (auto: desktop)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    venv = root / "opt/dashfleet-agent-venv"
    config = root / "etc/xdg/dashfleet/agent.toml"
    settings = enroll_key_in_config(config)
    assert settings["server"] == install_server.url and settings["enroll_token"].startswith("api_")
    assert config.stat().st_mode & 0o777 == 0o600  # headless: the service's alone
    unit = (root / "etc/systemd/system/dashfleet-agent.service").read_text()
    assert "ExecStart=/opt/dashfleet-agent-venv/bin/dashfleet-agent --no-tray" in unit
    assert (
        "Exec=/opt/dashfleet-agent-venv/session-autostart"
        in (root / "etc/xdg/autostart/dashfleet-agent.desktop").read_text()
    )
    if shutil.which("systemd-analyze"):
        # The unit's own checks (its paths live under the temporary root, so only its syntax).
        verify = run("systemd-analyze", "verify", "--man=no", str(root / "etc/systemd/system/dashfleet-agent.service"))
        assert "Unknown" not in verify.stderr and "Invalid" not in verify.stderr, verify.stderr

    machine_id = f"install-link-venv-{os.getpid()}"
    with tempfile.TemporaryDirectory() as home:
        assert_enrolled_and_reported(
            install_org, machine_id, agent_once(str(venv / "bin/dashfleet-agent"), config, home, machine_id)
        )

    # A second run updates in place (same venv, the agent installed again), here for a desktop,
    # where every signed-in user's agent reads agent.toml: root enrols the machine, and the file
    # holds the machine's own key, never the enrol key (kept root's, in enroll-token).
    again = run_command(
        linux_command(link),
        str(tmp_path),
        DASHFLEET_INSTALL_ROOT=str(root),
        DASHFLEET_INSTALL_METHOD="venv",
        DASHFLEET_AGENT_MODE="desktop",
    )
    assert again.returncode == 0, again.stdout + again.stderr
    desktop = enroll_key_in_config(config)
    assert set(desktop) == {"server", "token"} and desktop["server"] == settings["server"]
    assert config.stat().st_mode & 0o777 == 0o644
    kept = config.parent / "enroll-token"
    assert kept.read_text().strip() == settings["enroll_token"] and kept.stat().st_mode & 0o777 == 0o600
    assert (root / "var/lib/dashfleet-agent-enrolment").stat().st_mode & 0o777 == 0o700
    hostname = socket.gethostname()
    bound = [
        k
        for k in install_server.cli_json("key", "list", "--org", install_org.name)["keys"]
        if k["machine_id"] == hostname and k["revoked_at"] is None
    ]
    assert len(bound) == 1 and desktop["token"].startswith(bound[0]["prefix"])
    assert install_org.report(hostname, key=desktop["token"]).status_code == 200
