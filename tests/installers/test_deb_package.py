"""The Debian package, as IT uses it: `make agent-deb`, `dpkg -i`, the agent reports, `dpkg -r/-P`.

This installs a real package on this machine, so it needs root and dpkg (CI runs as root) and it
refuses to touch a machine where dashfleet-agent is already installed or configured. There is no
systemd inside CI containers, so the service's command line is run the way systemd would run it
(its credential copied to a private folder, a user without privileges) and the unit is checked with
`systemd-analyze verify`.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

from common.version import __version__

pytestmark = [pytest.mark.slow, pytest.mark.machine_wide]

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "dashfleet-agent"
CONFIG = Path("/etc/xdg/dashfleet/agent.toml")
UNIT = Path("/lib/systemd/system/dashfleet-agent.service")
AUTOSTART = Path("/etc/xdg/autostart/dashfleet-agent.desktop")
WANTS_LINK = Path("/etc/systemd/system/multi-user.target.wants/dashfleet-agent.service")
SERVICE_STATE = Path("/var/lib/dashfleet")
DEBCONF_PASSWORDS = Path("/var/cache/debconf/passwords.dat")
SERVER_ONLY_LIBS = (
    "nicegui",
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlmodel",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "argon2",
)
BUILD_TIMEOUT_SECONDS = 600
REPORT_TIMEOUT_SECONDS = 45  # the agent spreads its first report over up to 10 s


def run(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=120, **kwargs)


def dpkg(*args: str, **settings: str) -> subprocess.CompletedProcess:
    """dpkg ARGS as a mass deployment runs it: no questions, settings in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHFLEET_")}
    env.update(DEBIAN_FRONTEND="noninteractive", **settings)
    return run("dpkg", *args, env=env)


def installed() -> bool:
    status = run("dpkg-query", "-W", "-f=${Status}", PACKAGE)
    return status.returncode == 0 and "not-installed" not in status.stdout


@pytest.fixture(scope="module")
def deb_file() -> Path:
    if not shutil.which("dpkg-deb"):
        pytest.skip("dpkg-deb is missing: the .deb can only be built on Debian or Ubuntu")
    done = subprocess.run(
        ["make", "agent-deb"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS
    )
    assert done.returncode == 0, f"make agent-deb failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    arch = run("dpkg", "--print-architecture").stdout.strip()
    deb = REPO_ROOT / "dist" / f"{PACKAGE}_{__version__}_{arch}.deb"
    assert deb.is_file(), f"make agent-deb did not make {deb}:\n{done.stdout[-2000:]}"
    return deb


@pytest.fixture
def clean_machine(deb_file) -> Path:
    """Root, dpkg, and no dashfleet-agent of anyone else's; purges what the test installed."""
    if os.geteuid() != 0:
        pytest.skip("installing a .deb needs root (CI runs as root)")
    if not shutil.which("dpkg"):
        pytest.skip("dpkg is missing")
    if installed() or CONFIG.exists():
        pytest.skip(f"{PACKAGE} is already installed or configured here; not touching it")
    yield deb_file
    dpkg("--purge", PACKAGE)


def test_package_holds_the_agent_and_its_start_files_only(deb_file):
    fields = {
        name: run("dpkg-deb", "-f", str(deb_file), name).stdout.strip()
        for name in ("Package", "Version", "Architecture")
    }
    assert fields == {
        "Package": PACKAGE,
        "Version": __version__,
        "Architecture": run("dpkg", "--print-architecture").stdout.strip(),
    }

    listing = run("dpkg-deb", "-c", str(deb_file)).stdout
    paths = [line.split()[5] for line in listing.splitlines()]
    for expected in (
        "./opt/dashfleet-agent/dashfleet-agent",
        "./opt/dashfleet-agent/session-autostart",
        "./usr/bin/dashfleet-agent",
        f".{AUTOSTART}",
        f".{UNIT}",
    ):
        assert expected in paths, f"{expected} is not in the package"
    assert "-> /opt/dashfleet-agent/dashfleet-agent" in listing, "/usr/bin/dashfleet-agent is not a symlink"
    leaked = [p for p in paths if any(f"/{lib}" in p.lower() for lib in SERVER_ONLY_LIBS)]
    assert not leaked, f"server libraries leaked into the agent: {leaked[:10]}"
    assert not any(p.startswith("./etc/xdg/dashfleet") for p in paths), "the config must not be a package file"


def read_config() -> dict:
    with CONFIG.open("rb") as handle:
        return tomllib.load(handle)


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def fleet_entry(org, machine_id: str) -> dict | None:
    listed = [m for m in org.fleet(q=machine_id)["data"] if m["machine_id"] == machine_id]
    return listed[0] if listed else None


def wait_for_report(org, machine_id: str, proc: subprocess.Popen, after: float = 0.0) -> dict:
    """The machine's entry once it holds a report received after `after` (server time)."""
    deadline = time.monotonic() + REPORT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        entry = fleet_entry(org, machine_id)
        if entry and entry["report"] and (entry["ts"] or 0) > after:
            return entry
        assert proc.poll() is None, f"the agent exited with status {proc.returncode}"
        time.sleep(0.5)
    pytest.fail(f"{machine_id!r} did not report within {REPORT_TIMEOUT_SECONDS} s")


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=15)
    return out


class UnprivilegedHome:
    """A home folder for `nobody`, who runs the agent here as a desktop user or DynamicUser would."""

    def __init__(self) -> None:
        self.user = pwd.getpwnam("nobody")
        self.path = Path(tempfile.mkdtemp(prefix="dashfleet-deb-"))  # /tmp: `nobody` can reach it
        os.chown(self.path, self.user.pw_uid, self.user.pw_gid)

    def popen(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.path), **env},
            user=self.user.pw_uid,
            group=self.user.pw_gid,
            extra_groups=[],
            cwd=self.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def run_service_command(org, machine_id: str) -> dict:
    """The unit's ExecStart, run as systemd would: credential copy, unprivileged user, its Environment."""
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(UNIT)
    service = unit["Service"]
    credential_id, source = service["LoadCredential"].split(":", 1)
    home = UnprivilegedHome()
    try:
        credentials = home.path / "credentials"
        credentials.mkdir()
        shutil.copy(source, credentials / credential_id)
        os.chown(credentials / credential_id, home.user.pw_uid, home.user.pw_gid)
        state = home.path / "state"
        state.mkdir()
        os.chown(state, home.user.pw_uid, home.user.pw_gid)
        argv = shlex.split(service["ExecStart"].replace("${CREDENTIALS_DIRECTORY}", str(credentials)))
        env = dict(item.split("=", 1) for item in shlex.split(service["Environment"]))
        # StateDirectory= makes /var/lib/<name> writable; here a folder of our own stands in for it.
        env = {k: v.replace("/var/lib", str(state)) for k, v in env.items()}
        proc = home.popen(argv, {**env, "DASHFLEET_MACHINE_ID": machine_id})
        try:
            entry = wait_for_report(org, machine_id, proc)
        finally:
            output = stop(proc)
        assert (state / "dashfleet" / "log" / "agent.log").is_file(), "the service's log is not where docs say"
        assert "error" not in output.lower(), output
        return entry
    finally:
        home.remove()


def run_autostart_entry(org, machine_id: str, after: float = 0.0) -> tuple[dict, str]:
    """The desktop entry's Exec, as a signed-in user whose desktop sets its own XDG_CONFIG_DIRS."""
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(AUTOSTART)
    argv = shlex.split(entry["Desktop Entry"]["Exec"])
    home = UnprivilegedHome()
    try:
        proc = home.popen(
            argv, {"XDG_CONFIG_DIRS": "/etc/xdg/xdg-test-desktop:/etc/xdg", "DASHFLEET_MACHINE_ID": machine_id}
        )
        try:
            listed = wait_for_report(org, machine_id, proc, after)
        finally:
            output = stop(proc)
        return listed, output
    finally:
        home.remove()


def test_install_report_upgrade_remove_purge(clean_machine, server_factory):
    deb = str(clean_machine)
    server = server_factory()
    org = server.org()
    hostname = socket.gethostname()  # the agent's default machine id

    # 1. Mass deployment: server and key from the environment, a headless machine.
    # (The test server is plain http://, which every installer refuses unless told explicitly.)
    done = dpkg(
        "-i",
        deb,
        DASHFLEET_SERVER=server.url,
        DASHFLEET_TOKEN=org.api_key,
        DASHFLEET_AGENT_MODE="headless",
        DASHFLEET_ALLOW_HTTP="1",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert read_config() == {"server": server.url, "token": org.api_key}
    assert file_mode(CONFIG) == 0o600, "headless: the key must be readable by root only"
    assert WANTS_LINK.is_symlink(), "headless: the service is not enabled"
    # run_script's allow-list: there, empty, root's and writable by root only (the agent checks this).
    allowlist = CONFIG.parent / "allowlist.toml"
    assert file_mode(allowlist) == 0o644 and allowlist.stat().st_uid == 0
    assert file_mode(CONFIG.parent) == 0o755 and CONFIG.parent.stat().st_uid == 0
    assert all(line.startswith("#") for line in allowlist.read_text().splitlines() if line.strip())
    package_paths = [Path(p) for p in run("dpkg", "-L", PACKAGE).stdout.split()]
    if shutil.which("systemd-analyze"):
        verify = run("systemd-analyze", "verify", str(UNIT))
        assert verify.returncode == 0, verify.stdout + verify.stderr

    # The installed agent reads the file the package wrote and is accepted by the server.
    with tempfile.TemporaryDirectory() as home:
        once = run("dashfleet-agent", "--once", env={"PATH": "/usr/bin:/bin", "HOME": home})
    assert once.returncode == 0, once.stdout + once.stderr
    assert " OK HTTP 200 " in once.stdout
    reported = fleet_entry(org, hostname)
    assert reported and reported["report"]["system"]["agent_version"] == __version__
    service_entry = run_service_command(org, f"deb-service-{os.getpid()}")
    assert service_entry["status"] == "online"

    # 2. A wrong URL or key fails the install with the agent's own message and changes nothing.
    before = CONFIG.read_bytes()
    for bad_settings, complaint in (
        ({"DASHFLEET_SERVER": "ftp://fleet.example.com", "DASHFLEET_TOKEN": "api_x"}, "is not a server url"),
        (
            {"DASHFLEET_SERVER": server.url, "DASHFLEET_TOKEN": "api_with space", "DASHFLEET_ALLOW_HTTP": "1"},
            "api key contains spaces",
        ),
        ({"DASHFLEET_SERVER": server.url}, "give both"),
        ({"DASHFLEET_SERVER": server.url, "DASHFLEET_TOKEN": org.api_key}, "is plain http://"),
        ({"DASHFLEET_SERVER": server.url, "DASHFLEET_TOKEN": org.api_key, "DASHFLEET_ALLOW_HTTP": "0"}, "plain http"),
    ):
        done = dpkg("-i", deb, **bad_settings)
        assert done.returncode != 0
        assert complaint in done.stderr.lower() and "configuration was not changed" in done.stderr, done.stderr
        assert CONFIG.read_bytes() == before
    # Finishing the install without new values keeps the file as it was.
    done = dpkg("--configure", PACKAGE)
    assert done.returncode == 0, done.stderr
    assert CONFIG.read_bytes() == before

    # 3. Remove: everything goes but the configuration.
    done = dpkg("--remove", PACKAGE)
    assert done.returncode == 0, done.stderr
    # Shared folders (/usr/bin, /etc/xdg/autostart, ...) stay, of course; nothing of ours does.
    left = [
        p
        for p in package_paths
        if (p.exists() or p.is_symlink()) and (not p.is_dir() or p.is_relative_to("/opt/dashfleet-agent"))
    ]
    assert left == [], f"left behind by dpkg -r: {left[:10]}"
    assert not WANTS_LINK.is_symlink() and not WANTS_LINK.exists()
    assert not SERVICE_STATE.exists()
    assert sorted(p.name for p in CONFIG.parent.iterdir()) == [CONFIG.name, "allowlist.toml"]
    assert CONFIG.read_bytes() == before

    # 4. Reinstall from preseeded debconf answers, for desktops, with a new agent-only key; the old
    #    key is revoked, so a report that gets through proves the new file is the one read.
    new_key = server.make_key(org.name, "agent")["api_key"]
    reader = dataclasses.replace(org, api_key=server.make_key(org.name, "read")["api_key"])
    first_key = [
        k for k in server.cli_json("key", "list", "--org", org.name)["keys"] if org.api_key.startswith(k["prefix"])
    ]
    assert len(first_key) == 1
    server.cli_json("key", "revoke", "--org", org.name, str(first_key[0]["key_id"]))
    selections = (
        f"{PACKAGE} {PACKAGE}/server string {server.url}\n"
        f"{PACKAGE} {PACKAGE}/token password {new_key}\n"
        f"{PACKAGE} {PACKAGE}/mode select desktop\n"
        f"{PACKAGE} {PACKAGE}/allow_http boolean true\n"
    )
    seeded = subprocess.run(["debconf-set-selections"], input=selections, capture_output=True, text=True)
    assert seeded.returncode == 0, seeded.stderr
    done = dpkg("-i", deb)
    assert done.returncode == 0, done.stdout + done.stderr
    assert read_config() == {"server": server.url, "token": new_key}
    assert file_mode(CONFIG) == 0o644, "desktop: every signed-in user's agent must read the file"
    assert not WANTS_LINK.exists(), "desktop: the service must stay disabled"
    if DEBCONF_PASSWORDS.exists():
        assert new_key not in DEBCONF_PASSWORDS.read_text(), "the key must live in agent.toml only"
    desktop_entry, output = run_autostart_entry(reader, f"deb-desktop-{os.getpid()}")
    assert desktop_entry["report"]["cpu_percent"] >= 0
    assert "no system tray" in output.lower()  # no display here: it says so and runs headless

    # 5. Purge: nothing is left, not even the configuration or the debconf answers.
    done = dpkg("--purge", PACKAGE)
    assert done.returncode == 0, done.stderr
    assert not CONFIG.parent.exists()
    assert not any(p.exists() or p.is_symlink() for p in package_paths if not p.is_dir())
    assert run("debconf-show", PACKAGE).stdout.strip() == ""
    assert not installed()


ENROL_KEY_FILE = CONFIG.parent / "enroll-token"
ENROL_STATE = Path("/var/lib/dashfleet-agent-enrolment")


def can_read_as_nobody(path: Path) -> bool:
    nobody = pwd.getpwnam("nobody")
    done = subprocess.run(
        ["cat", str(path)], user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], capture_output=True, timeout=30
    )
    return done.returncode == 0


def live_machine_keys(server, org_name: str, machine_id: str) -> list[dict]:
    keys = server.cli_json("key", "list", "--org", org_name)["keys"]
    return [k for k in keys if k["machine_id"] == machine_id and k["revoked_at"] is None]


def test_a_desktop_never_exposes_the_enrol_key(clean_machine, server_factory, tmp_path):
    """Desktop: every signed-in user reads agent.toml, so root enrols the machine at install and
    agent.toml holds this machine's own key; the enrol key stays root's. Plain http:// is refused
    unless allowed explicitly."""
    deb = str(clean_machine)
    server = server_factory()
    org = server.org()
    hostname = socket.gethostname()
    enrol_key = server.make_key(org.name, "enroll")["api_key"]
    key_file = tmp_path / "enroll-token"
    key_file.write_text(enrol_key + "\n")
    key_file.chmod(0o600)
    settings = {
        "DASHFLEET_SERVER": server.url,
        "DASHFLEET_ENROLL_TOKEN_FILE": str(key_file),
        "DASHFLEET_AGENT_MODE": "desktop",
    }

    # http:// without an explicit allowance: refused, nothing written, nothing enrolled.
    done = dpkg("-i", deb, **settings)
    assert done.returncode != 0
    assert "is plain http://" in done.stderr and "DASHFLEET_ALLOW_HTTP=1" in done.stderr, done.stderr
    assert not CONFIG.exists() and not ENROL_KEY_FILE.exists()
    assert live_machine_keys(server, org.name, hostname) == []

    done = dpkg("-i", deb, **settings, DASHFLEET_ALLOW_HTTP="1")
    assert done.returncode == 0, done.stdout + done.stderr
    config = read_config()
    machine_key = config["token"]
    assert config == {"server": server.url, "token": machine_key} and machine_key != enrol_key
    assert file_mode(CONFIG) == 0o644, "desktop: every signed-in user's agent must read the file"
    [bound] = live_machine_keys(server, org.name, hostname)
    assert machine_key.startswith(bound["prefix"]) and bound["scopes"] == ["agent"]
    # The enrol key: in a root-only file, and in nothing else a user can read.
    assert ENROL_KEY_FILE.read_text().strip() == enrol_key
    assert file_mode(ENROL_KEY_FILE) == 0o600 and ENROL_KEY_FILE.stat().st_uid == 0
    assert not can_read_as_nobody(ENROL_KEY_FILE) and can_read_as_nobody(CONFIG)
    for path in (*CONFIG.parent.rglob("*"), *ENROL_STATE.rglob("*")):
        if path.is_file() and path != ENROL_KEY_FILE:
            assert enrol_key not in path.read_text(errors="replace"), path
    assert file_mode(ENROL_STATE) == 0o700
    # The desktop entry, as an unprivileged user, reports for this machine with the machine's key.
    enrolled_report = fleet_entry(org, hostname)["ts"]
    desktop_entry, _ = run_autostart_entry(org, hostname, after=enrolled_report)
    assert desktop_entry["report"]["system"]["agent_version"] == __version__

    # An admin resets the enrolment: the key is refused; dpkg-reconfigure enrols again.
    server.cli_json("enrolment", "reset", "--org", org.name, hostname)
    assert org.report(hostname, key=machine_key).status_code == 401
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHFLEET_")}
    again = run("dpkg-reconfigure", "-f", "noninteractive", PACKAGE, env={**env, "DASHFLEET_ALLOW_HTTP": "1"})
    assert again.returncode == 0, again.stdout + again.stderr
    renewed = read_config()["token"]
    assert renewed != machine_key and org.report(hostname, key=renewed).status_code == 200
    assert file_mode(CONFIG) == 0o644

    # An earlier version left the enrol key in a world-readable agent.toml: configuring converts it.
    CONFIG.write_text(f'server = "{server.url}"\nenroll_token = "{enrol_key}"\ninterval = 30\n')
    CONFIG.chmod(0o644)
    again = run("dpkg-reconfigure", "-f", "noninteractive", PACKAGE, env={**env, "DASHFLEET_ALLOW_HTTP": "1"})
    assert again.returncode == 0, again.stdout + again.stderr
    converted = read_config()
    # Root's agent still holds the machine's key, which the server accepts: it is kept (agents of
    # signed-in users keep working), and the enrol key is out of agent.toml again.
    assert converted == {"server": server.url, "token": renewed, "interval": 30}
    assert file_mode(CONFIG) == 0o644 and enrol_key not in CONFIG.read_text()
    assert org.report(hostname, key=renewed).status_code == 200

    done = dpkg("--purge", PACKAGE)
    assert done.returncode == 0, done.stderr
    assert not CONFIG.parent.exists() and not ENROL_STATE.exists()
