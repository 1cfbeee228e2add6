"""`dashfleet-admin demo`: a working fleet on this machine with nothing set up.

The server on the embedded database, a demo organisation with an admin whose login is printed,
a live agent of this machine reporting to it, and a few simulated machines so the fleet view
has something to sort and filter. Everything goes through the real API.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
import time

from admin.core.config import Settings
from admin.core.db import make_engine
from admin.services.accounts import AccountService
from admin.services.errors import Conflict, NotFound
from common.constants import PATH_PING, PATH_REPORT, PATH_STATUS, SCOPE_AGENT, SCOPE_READ
from common.health import compute_health

DEMO_ORG = "Demo"
DEMO_EMAIL = "admin@demo.dashfleet"
SIMULATED = [
    ("lab-linux-01", "Linux", "6.1.0"),
    ("lab-linux-02", "Linux", "6.8.0"),
    ("office-win-01", "Windows", "11"),
    ("office-win-02", "Windows", "10"),
    ("design-mac-01", "Darwin", "23.4.0"),
    ("kiosk-<lobby>", "Linux", "5.15"),
]


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def _prepare(settings: Settings) -> tuple[str, str]:
    """The demo org (made once), a fresh admin password and a fresh agent key for this run."""
    accounts = AccountService(make_engine(settings))
    try:
        org = accounts.org_named(DEMO_ORG)
    except NotFound:
        org, _ = accounts.create_org(DEMO_ORG)
    password = secrets.token_urlsafe(9)
    try:
        accounts.create_user(org_id=org.id, email=DEMO_EMAIL, password=password, role="admin")
    except Conflict:
        user = accounts.user_by_email(email=DEMO_EMAIL, org_id=org.id)
        accounts.set_password(org_id=org.id, user_id=user.id, password=password)
    key = accounts.create_key(org_id=org.id, scopes=[SCOPE_AGENT, SCOPE_READ])
    return password, key.api_key


def _simulate(base_url: str, api_key: str, stop: threading.Event) -> None:
    """A few imaginary machines reporting every 15 s through the real API."""
    import httpx

    rng = random.Random(7)
    level = {m: [rng.uniform(5, 60), rng.uniform(20, 80), rng.uniform(10, 95)] for m, _, _ in SIMULATED}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=5) as client:
        while not stop.is_set():
            for machine_id, os_name, version in SIMULATED:
                cpu, ram, disk = (min(100.0, max(0.0, v + rng.uniform(-8, 8))) for v in level[machine_id])
                report = {
                    "cpu_percent": round(cpu, 1),
                    "ram_percent": round(ram, 1),
                    "disk_percent": round(disk, 1),
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "health": compute_health(cpu, ram, disk).as_dict(),
                    "system": {
                        "os": os_name,
                        "os_version": version,
                        "hostname": machine_id.split("<")[0] or machine_id,
                        "agent_version": "simulated",
                        "architecture": "x86_64",
                    },
                }
                try:
                    client.post(PATH_REPORT, json={"machine_id": machine_id, "report": report})
                    client.post(PATH_PING, json={"machine_id": machine_id, "timestamp": time.time()})
                except httpx.HTTPError:
                    pass  # the server is starting or stopping
            stop.wait(15)


def _start_agent(base_url: str, api_key: str) -> subprocess.Popen | None:
    # Looked up, not imported: the server never imports the agent (an import-linter contract).
    if importlib.util.find_spec("desktop_agent") is None:
        print("(the agent's libraries are not installed here: .venv/bin/pip install -e '.[agent]' in the repository)")
        return None
    cmd = [sys.executable, "-m", "desktop_agent", "--server", base_url, "--token", api_key, "--interval", "10"]
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        cmd.append("--no-tray")
    return subprocess.Popen(cmd, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)


def _die_with_parent() -> None:
    # uvicorn ends the demo by re-raising SIGTERM, before any cleanup of ours can run: the kernel
    # then stops the agent with it (PR_SET_PDEATHSIG). Ctrl+C reaches the agent directly anyway.
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _wait_until_up(base_url: str, timeout: float = 30) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + PATH_STATUS, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.2)
    return False


def run_demo(settings: Settings, *, host: str, port: int) -> None:
    import uvicorn

    from admin.main import create_app

    password, api_key = _prepare(settings)
    base_url = f"http://{host}:{port}"
    print(
        json.dumps(
            {"url": base_url, "login": {"email": DEMO_EMAIL, "password": password}, "api_key": api_key}, indent=2
        )
    )
    print(
        f"\n  Open {base_url}/login and sign in as {DEMO_EMAIL} / {password}\n"
        f"  API: curl -H 'Authorization: Bearer {api_key}' {base_url}/api/fleet\n  Stop with Ctrl+C.\n",
        flush=True,
    )

    stop = threading.Event()
    agent: dict[str, subprocess.Popen | None] = {"process": None}

    def companions() -> None:
        if not _wait_until_up(base_url):
            return
        agent["process"] = _start_agent(base_url, api_key)
        _simulate(base_url, api_key, stop)

    threading.Thread(target=companions, daemon=True, name="demo-companions").start()
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
    finally:
        stop.set()
        if agent["process"] is not None:
            agent["process"].terminate()
            try:
                agent["process"].wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent["process"].kill()
