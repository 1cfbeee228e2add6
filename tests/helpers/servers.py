"""The suite's real server processes, their CLI and the services they need (PostgreSQL, Redis).

Nothing here is mocked. A `ServerProcess` is a working directory plus `DASHFLEET_*` settings; its
`.cli()` runs `python -m admin ...` there and `.start()` runs `python -m admin serve` as a child
process, exactly as a user would. The fixtures that hand them out are in tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers.api import Org
from tests.helpers.cli_zygote import CliZygote

REPO_ROOT = Path(__file__).resolve().parents[2]
# Generous: a loaded CI machine starts a server in 5 s, a machine shared with other work in up to 40.
STARTUP_TIMEOUT_SECONDS = 90.0
CLI_TIMEOUT_SECONDS = 120.0
# `org create` is a fresh Python process (about 1 s of CPU here); making the next organisation in
# the background while a test runs keeps the suite fast without sharing organisations between tests.
ORG_PREFETCH = 1
# Tests on PostgreSQL carry the `postgres` marker, so `-m "not postgres"` leaves them out.
BACKENDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))

POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# A database number of its own, so flushing it never touches anyone else's keys; one per pytest-xdist
# worker (gw0, gw1, ...), so workers never flush each other's (Redis has 16: 11 to 15 here).
REDIS_TEST_DB = 11 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 5


# What the suite spends on processes, shown at the end of a run (the suite must stay fast).
CLI = CliZygote()  # closed at the session's end (tests/conftest.py)
CLI_COMMANDS: Counter[str] = Counter()  # which commands the fixtures run most (the summary line)
SPENT = {"cli runs": 0, "cli seconds": 0.0, "server starts": 0, "server start seconds": 0.0}


def service_unavailable(reason: str) -> None:
    """CI must have every service (a skip there would hide a broken backend); a laptop may not."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (mandatory when CI=true)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: dict[str, object]) -> dict[str, str]:
    """`fleet_ttl_seconds=2` -> `DASHFLEET_FLEET_TTL_SECONDS="2"`; booleans as true/false."""
    env = {}
    for name, value in settings.items():
        key = name.upper()
        if not key.startswith("DASHFLEET_"):
            key = "DASHFLEET_" + key
        env[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def base_env() -> dict[str, str]:
    """This process's environment without any DASHFLEET_* (a developer's shell must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHFLEET_")}
    # Test the working tree, whether or not the venv has the project installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---------------------------------------------------------------------------------------------
# Services


class PostgresDatabases:
    """Creates a fresh database per server and drops them all at the end of the session."""

    def __init__(self) -> None:
        import psycopg

        try:
            self._conn = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            service_unavailable(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {exc}")
        self._names: list[str] = []

    def create(self, *, icu_locale: str | None = None) -> str:
        """A new database; with `icu_locale` (e.g. "en"), text compares by that locale, as on most
        production servers (this machine's default, C.UTF-8, compares like bytes)."""
        name = f"dashfleet_{secrets.token_hex(6)}"
        locale = (
            f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}' LOCALE 'C.UTF-8'" if icu_locale else ""
        )
        self._conn.execute(f'CREATE DATABASE "{name}"{locale}')
        self._names.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1/{name}"

    def drop_all(self) -> None:
        for name in self._names:
            # FORCE: a server that was killed may leave connections behind.
            self._conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._names.clear()
        self._conn.close()


# ---------------------------------------------------------------------------------------------
# The server and its CLI


class ServerProcess:
    """A DashFleet installation: a working directory (./data/ lives there) and its settings.

    `.cli(...)` runs `python -m admin ...` in it; `.start()` serves it on a free port.
    """

    def __init__(self, workdir: Path, env: dict[str, str], backend: str = "sqlite") -> None:
        self.workdir = workdir
        self.env = env
        self.backend = backend
        self.port = 0
        self.wanted_port = 0  # 0: any free port
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "server.log"
        self._http: httpx.Client | None = None
        self._org_maker: ThreadPoolExecutor | None = None
        self._next_orgs: deque[Future] = deque()
        self._asked_for_org = False
        self.serve_args: list[str] = []  # more `admin serve` options, e.g. ["--access-log"]

    # -- CLI -------------------------------------------------------------------------------

    def cli(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = CLI_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess:
        """Runs `python -m admin ARGS` here (forked from tests/helpers/cli_zygote.py, which has
        imported it once); no terminal on stdin unless `input` is given."""
        started = time.monotonic()
        try:
            return CLI.run(list(args), env={**self.env, **(env or {})}, cwd=self.workdir, input=input, timeout=timeout)
        finally:
            SPENT["cli runs"] += 1
            CLI_COMMANDS[" ".join(a for a in args[:2] if a.isidentifier() or a.replace("-", "").isalpha())] += 1
            SPENT["cli seconds"] += time.monotonic() - started

    def cli_json(self, *args: str, **kwargs) -> dict:
        """Runs a command that must succeed and print one JSON object."""
        done = self.cli(*args, **kwargs)
        assert done.returncode == 0, f"`admin {' '.join(args)}` failed:\n{done.stderr}"
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"`admin {' '.join(args)}` did not print JSON:\n{done.stdout}")

    def make_org(self, name: str | None = None) -> tuple[str, str]:
        """Creates an organisation through the CLI; returns (name, api_key)."""
        name = name or f"org-{secrets.token_hex(6)}"
        created = self.cli_json("org", "create", name)
        return name, created["api_key"]

    def make_key(self, org_name: str, *scopes: str) -> dict:
        """`key create --org NAME --scope ...`; returns its JSON (key_id, api_key, scopes)."""
        args = [arg for scope in scopes for arg in ("--scope", scope)]
        return self.cli_json("key", "create", "--org", org_name, *args)

    # -- serving ---------------------------------------------------------------------------

    def start(self) -> ServerProcess:
        SPENT["server starts"] += 1
        started = time.monotonic()
        try:
            return self._start()
        finally:
            SPENT["server start seconds"] += time.monotonic() - started

    def _start(self) -> ServerProcess:
        for _attempt in range(3):
            self.port = self.wanted_port or free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            if self._start_once():
                return self
            # Another process may have taken the free port between our probe and its bind.
            if "address already in use" not in self.log().lower():
                break
        self.fail_to_start(f"the server exited with status {self.proc.returncode}")

    def _start_once(self) -> bool:
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "admin",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *self.serve_args,
                ],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/api/status", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        self.fail_to_start(f"GET /api/status did not answer 200 within {STARTUP_TIMEOUT_SECONDS:.0f} s")

    def fail_to_start(self, why: str) -> None:
        pytest.fail(
            f"DashFleet server ({self.backend}) did not start: {why}.\n--- its output ---\n{self.log()[-6000:]}",
            pytrace=False,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._org_maker is not None:
            self._org_maker.shutdown(wait=True, cancel_futures=True)
            self._org_maker = None
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        """One keep-alive client for the server; pass auth headers per request."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=30)
        return self._http

    def openapi(self) -> dict:
        """The OpenAPI schema; the contract does not fix its path, so look where FastAPI apps put it."""
        for path in ("/api/openapi.json", "/openapi.json"):
            resp = self.http.get(path)
            if resp.status_code == 200 and resp.headers["content-type"].startswith("application/json"):
                return resp.json()
        pytest.fail("no OpenAPI schema at /api/openapi.json or /openapi.json")

    def org(self, name: str | None = None) -> Org:
        """A new organisation with its full-scope key.

        Unnamed ones come from a prefetch queue once a server has been asked for a second one (a
        server that makes one organisation only should not pay for spares).
        """
        if name is not None or (self._org_maker is None and not self._asked_for_org):
            self._asked_for_org = True
            return Org(self, *self.make_org(name))
        if self._org_maker is None:
            self._org_maker = ThreadPoolExecutor(ORG_PREFETCH, thread_name_prefix="org-prefetch")
        while len(self._next_orgs) <= ORG_PREFETCH:
            self._next_orgs.append(self._org_maker.submit(self.make_org))
        return Org(self, *self._next_orgs.popleft().result())


class ServerFactory:
    """Makes ServerProcess objects in fresh directories and stops them all on close()."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
        self._request = request
        self._tmp = tmp_path_factory
        self._servers: list[ServerProcess] = []

    def prepare(self, backend: str = "sqlite", *, port: int = 0, **settings: object) -> ServerProcess:
        """A fresh installation, not started (for the CLI, or to start later); `port` when its
        settings must name it (DASHFLEET_PUBLIC_URL), else any free one."""
        env = {**base_env(), **settings_env(settings)}
        if backend not in ("sqlite", "postgres"):
            raise ValueError(f"unknown backend {backend!r}")
        if backend == "postgres" and "DASHFLEET_DATABASE_URL" not in env:  # else: the caller's own database
            env["DASHFLEET_DATABASE_URL"] = self._request.getfixturevalue("postgres").create()
        server = ServerProcess(self._tmp.mktemp(f"dashfleet-{backend}-"), env, backend)
        server.wanted_port = port
        self._servers.append(server)
        return server

    def __call__(self, backend: str = "sqlite", *, port: int = 0, **settings: object) -> ServerProcess:
        return self.prepare(backend, port=port, **settings).start()

    def close(self) -> None:
        for server in self._servers:
            server.stop()
