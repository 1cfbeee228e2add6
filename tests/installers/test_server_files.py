"""installers/server/ (systemd unit, env file, CLI wrapper, nginx) agree with the server they run.

The unit's command line is parsed by the real `dashfleet-admin` parser, the env example by the
real Settings, and the unit, wrapper and proxy by each other. `nginx -t` runs when nginx is
installed (the config was also run in front of two real server processes; see docs/deploy.md).
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from admin.cli import build_parser
from admin.core.config import Settings

SERVER = Path(__file__).resolve().parents[2] / "installers" / "server"
UNIT = SERVER / "dashfleet-admin@.service"
ENV_EXAMPLE = SERVER / "admin.env.example"
WRAPPER = SERVER / "dashfleet-admin"
NGINX = SERVER / "nginx-dashfleet.conf"


@pytest.fixture(scope="module")
def service() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read(UNIT)
    return unit["Service"]


def wrapper_value(name: str) -> str:
    return re.search(rf"^{name}=(\S+)$", WRAPPER.read_text(), re.MULTILINE).group(1)


def test_unit_runs_serve_behind_the_local_proxy(service):
    argv = shlex.split(service["ExecStart"].replace("%i", "8001"))
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.host, args.port) == ("serve", "127.0.0.1", 8001)
    # The proxy on this host is the one whose X-Forwarded-For the server trusts.
    assert args.forwarded_allow_ips == "127.0.0.1"
    assert service["WorkingDirectory"] == "/var/lib/" + service["StateDirectory"]


def test_wrapper_runs_the_cli_as_the_service_does(service):
    assert wrapper_value("PROGRAM") == shlex.split(service["ExecStart"])[0]
    assert wrapper_value("ENV_FILE") == service["EnvironmentFile"]
    assert wrapper_value("HOME_DIR") == service["WorkingDirectory"]
    assert f"runuser -u {service['User']} --" in WRAPPER.read_text()
    assert subprocess.run(["sh", "-n", str(WRAPPER)]).returncode == 0


def test_env_example_names_real_settings_and_loads(tmp_path):
    text = ENV_EXAMPLE.read_text()
    named = set(re.findall(r"^#?(DASHFLEET_\w+)=", text, re.MULTILINE))
    fields = {f"DASHFLEET_{name.upper()}" for name in Settings.model_fields}
    assert named and named <= fields, f"not settings: {sorted(named - fields)}"
    # Every setting an operator tunes is there (the password is only for `user create`).
    assert fields - named <= {"DASHFLEET_PASSWORD", "DASHFLEET_DATA_DIR"}
    # Uncommented, every line is a valid value.
    env_file = tmp_path / "admin.env"
    env_file.write_text(
        re.sub(r"^#(DASHFLEET_\w+=.+)$", r"\1", text, flags=re.MULTILINE).replace(
            "DASHFLEET_STORAGE_SECRET=\n", "DASHFLEET_STORAGE_SECRET=x\n"
        )
    )
    settings = Settings(_env_file=env_file)
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.rate_limit_storage.startswith("redis://")


def test_proxy_sends_every_request_to_the_server_processes_with_the_client_address():
    conf = NGINX.read_text()
    upstreams = dict(re.findall(r"upstream (\w+) \{(.*?)\}", conf, re.DOTALL))
    ports = {name: re.findall(r"server 127\.0\.0\.1:(\d+);", body) for name, body in upstreams.items()}
    assert ports["dashfleet_api"] == ports["dashfleet_ui"] and len(ports["dashfleet_api"]) >= 2
    assert "ip_hash;" in upstreams["dashfleet_ui"], "the web UI's websocket needs a sticky process"
    locations = re.findall(r"location (\S+) \{(.*?)\n    \}", conf, re.DOTALL)
    assert {path for path, _ in locations} == {"/api/", "/"}
    for path, body in locations:
        # proxy_set_header in a location replaces all inherited ones: each must set its own.
        assert "proxy_set_header X-Forwarded-For $remote_addr;" in body, path
        assert "proxy_set_header Host $host;" in body, path
    assert "$http_upgrade" in dict(locations)["/"]
    assert re.search(r"listen 443 ssl", conf) and "return 301 https://" in conf


def test_nginx_accepts_the_config(tmp_path):
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if not nginx:
        pytest.skip("nginx is not installed here (apt install nginx); the static checks above still ran")
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=fleet.example.com",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        capture_output=True,
    )
    assert made.returncode == 0
    site = NGINX.read_text().replace("/etc/letsencrypt/live/fleet.example.com/fullchain.pem", str(certificate))
    site = site.replace("/etc/letsencrypt/live/fleet.example.com/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log off; include {tmp_path}/site.conf;\n"
        # Temporary folders of our own: the packaged defaults under /var/lib/nginx may not exist.
        + "".join(
            f" {kind}_temp_path {tmp_path}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + "}\n"
    )
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


HARDENING = {
    "UMask": "0077",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
}


def unit_lines() -> list[tuple[str, str]]:
    return [
        tuple(line.split("=", 1))  # type: ignore[misc]
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    ]


def test_unit_is_sandboxed():
    """Finding 14: no capabilities, private users/devices/tmp, kernel and namespace protections,
    a system-call filter, and files readable by the service only."""
    values = dict(unit_lines())
    for name, expected in HARDENING.items():
        assert values.get(name) == expected, f"{name}={values.get(name)!r}, expected {expected!r}"
    filters = [v for k, v in unit_lines() if k == "SystemCallFilter"]
    assert "@system-service" in filters and any(f.startswith("~") and "@privileged" in f for f in filters)


def test_unit_parses_with_systemd(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # The real program lives in /opt on a server; any executable lets systemd check the rest.
    unit = tmp_path / "dashfleet-admin@8001.service"
    unit.write_text(UNIT.read_text().replace("/opt/dashfleet/venv/bin/dashfleet-admin", "/usr/bin/env"))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in (done.stdout + done.stderr).splitlines() if str(unit.name) in line]
    assert not problems, "\n".join(problems)
