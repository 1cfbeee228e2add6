"""Fixtures shared by the whole suite: real server processes, real databases, the real CLI.

Nothing here is mocked. A `ServerProcess` is a working directory plus `DASHFLEET_*` settings; its
`.cli()` runs `python -m admin ...` there and `.start()` runs `python -m admin serve` as a child
process, exactly as a user would. Tests talk to it over HTTP.

- `server`: one server per backend for the whole session (parametrized "sqlite" / "postgres"),
  so every test using it runs on both. Tests isolate by making their own organisation (`org`).
- `server_factory(backend="sqlite", **settings)`: a server of one's own, for settings the shared
  one cannot have (tiny TTL, small body limit, feature flags, Redis rate limits). Settings are
  given as `fleet_ttl_seconds=2` or `DASHFLEET_FLEET_TTL_SECONDS="2"`.
- `admin_cli`: a fresh, never-started working directory, for CLI tests.
- `postgres` / `redis_url`: the services; when unreachable they fail the test under CI=true and
  skip it (with the reason) elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 30.0
CLI_TIMEOUT_SECONDS = 120.0
# `org create` is a fresh Python process (about 1 s of CPU here); making the next organisation in
# the background while a test runs keeps the suite fast without sharing organisations between tests.
ORG_PREFETCH = 1
# Tests on PostgreSQL carry the `postgres` marker, so `-m "not postgres"` leaves them out.
BACKENDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))

POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# A database number of its own, so flushing it never touches anyone else's keys.
REDIS_TEST_DB = 11


# What the suite spends on processes, shown at the end of a run (the suite must stay fast).
SPENT = {"cli runs": 0, "cli seconds": 0.0, "server starts": 0, "server start seconds": 0.0}


def pytest_terminal_summary(terminalreporter) -> None:
    if SPENT["cli runs"] or SPENT["server starts"]:
        terminalreporter.write_line(
            "dashfleet fixtures: {cli runs} CLI runs ({cli seconds:.0f} s), {server starts} server starts "
            "({server start seconds:.0f} s)".format(**SPENT)
        )


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture
def redis_url() -> str:
    """A flushed Redis database of the tests' own, as a DASHFLEET_RATE_LIMIT_STORAGE URL."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_TEST_DB, socket_timeout=3)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        service_unavailable(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}")
    finally:
        client.close()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_TEST_DB}"


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
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "server.log"
        self._http: httpx.Client | None = None
        self._org_maker: ThreadPoolExecutor | None = None
        self._next_orgs: deque[Future] = deque()
        self._asked_for_org = False

    # -- CLI -------------------------------------------------------------------------------

    def cli(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = CLI_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess:
        """Runs `python -m admin ARGS` here; no terminal on stdin unless `input` is given."""
        started = time.monotonic()
        try:
            return subprocess.run(
                [sys.executable, "-m", "admin", *args],
                cwd=self.workdir,
                env={**self.env, **(env or {})},
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        finally:
            SPENT["cli runs"] += 1
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
            self.port = free_port()
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
                [sys.executable, "-m", "admin", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
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

    def prepare(self, backend: str = "sqlite", **settings: object) -> ServerProcess:
        """A fresh installation, not started (for the CLI, or to start later)."""
        env = {**base_env(), **settings_env(settings)}
        if backend == "postgres" and "DASHFLEET_DATABASE_URL" not in env:
            env["DASHFLEET_DATABASE_URL"] = self._request.getfixturevalue("postgres").create()
        elif backend != "sqlite":
            raise ValueError(f"unknown backend {backend!r}")
        server = ServerProcess(self._tmp.mktemp(f"dashfleet-{backend}-"), env, backend)
        self._servers.append(server)
        return server

    def __call__(self, backend: str = "sqlite", **settings: object) -> ServerProcess:
        return self.prepare(backend, **settings).start()

    def close(self) -> None:
        for server in self._servers:
            server.stop()


def _factory(request, tmp_path_factory) -> Iterator[ServerFactory]:
    factory = ServerFactory(request, tmp_path_factory)
    yield factory
    factory.close()


# The same factory at three lifetimes: per test (the usual), per module (a server with special
# settings shared by one file's tests) and per session (the shared `server`).
server_factory = pytest.fixture(_factory, name="server_factory")
module_server_factory = pytest.fixture(_factory, scope="module", name="module_server_factory")
session_server_factory = pytest.fixture(_factory, scope="session", name="session_server_factory")


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, session_server_factory) -> ServerProcess:
    """The shared server of one backend, default settings; the suite runs once per backend."""
    return session_server_factory(request.param)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """For tests with a server of their own that must hold on both databases."""
    return request.param


@pytest.fixture
def admin_cli(server_factory) -> ServerProcess:
    """A fresh installation (empty directory, default SQLite) that was never started."""
    return server_factory.prepare()


# ---------------------------------------------------------------------------------------------
# Talking to the API


def sample_report(
    cpu_percent: float = 12.5, ram_percent: float = 40.0, disk_percent: float = 55.0, **fields: object
) -> dict:
    """A report as the agent sends it; `system=...` and any extra field may be given."""
    report = {
        "cpu_percent": cpu_percent,
        "ram_percent": ram_percent,
        "disk_percent": disk_percent,
        "timestamp": "2026-01-02T15:30:45+00:00",
        "ram_used_gib": 6.2,
        "ram_total_gib": 16.0,
        "disk_used_gib": 120.5,
        "disk_total_gib": 512.0,
        "uptime_seconds": 3723,
        "uptime_hms": "01:02:03",
        "health": {"score": 80, "status": "ok", "reasons": []},
        "system": {"os": "Linux", "os_version": "6.1.0", "hostname": "test-host"},
    }
    report.update(fields)
    return report


@dataclass
class Org:
    """An organisation on a running server, with its full-scope key (agent + read)."""

    server: ServerProcess
    name: str
    api_key: str
    _auth: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._auth = bearer(self.api_key)

    def via(self, server: ServerProcess) -> Org:
        """The same organisation reached through another server process of the same deployment."""
        return Org(server=server, name=self.name, api_key=self.api_key)

    def request(self, method: str, path: str, *, key: str | None = None, **kwargs) -> httpx.Response:
        headers = {**(bearer(key) if key is not None else self._auth), **kwargs.pop("headers", {})}
        return self.server.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def report(self, machine_id: object, report: dict | None = None, **kwargs) -> httpx.Response:
        body = {"machine_id": machine_id, "report": sample_report() if report is None else report}
        return self.post("/api/fleet/report", json=body, **kwargs)

    def ping(
        self, machine_id: object, headers: dict | None = None, key: str | None = None, **fields: object
    ) -> httpx.Response:
        return self.post("/api/fleet/ping", json={"machine_id": machine_id, **fields}, headers=headers or {}, key=key)

    def fleet(self, **params: object) -> dict:
        """GET /api/fleet, which must succeed."""
        resp = self.get("/api/fleet", params=params)
        assert resp.status_code == 200, f"GET /api/fleet {params}: {resp.status_code} {resp.text}"
        return resp.json()

    def machine_ids(self, **params: object) -> list[str]:
        return [machine["machine_id"] for machine in self.fleet(**params)["data"]]

    def machine(self, machine_id: str) -> dict:
        """The listing's entry for one machine (fails if it is not listed)."""
        matches = [m for m in self.fleet(q=machine_id, limit=1000)["data"] if m["machine_id"] == machine_id]
        assert len(matches) == 1, f"{machine_id!r} listed {len(matches)} times"
        return matches[0]

    def assert_empty(self) -> None:
        """Nothing stored: the organisation's fleet has no machine."""
        listing = self.fleet()
        assert listing["count"] == 0 and listing["data"] == [], f"something was stored: {listing}"


def bearer(api_key: str) -> dict:
    return {"Authorization": f"Bearer {api_key}"}


class Contract:
    """Checks of what CONTRACT.md promises every answer, shared by the test files (`contract`)."""

    sample_report = staticmethod(sample_report)

    @staticmethod
    def error(resp: httpx.Response, *statuses: int) -> dict:
        """One of `statuses`, with a JSON body {"error": "<clear message>"}."""
        assert resp.status_code in statuses, f"expected {statuses}, got {resp.status_code}: {resp.text[:500]}"
        try:
            body = resp.json()
        except ValueError:
            pytest.fail(f"error body is not JSON: {resp.text[:500]!r}")
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip(), (
            f"error body lacks a clear 'error' message: {body}"
        )
        return body

    @staticmethod
    def unauthorized(resp: httpx.Response) -> None:
        """401 with exactly {"error": "Unauthorized"}: no data, no hint of what exists."""
        assert resp.status_code == 401, f"expected 401, got {resp.status_code}: {resp.text[:500]}"
        assert resp.json() == {"error": "Unauthorized"}

    @classmethod
    def rate_limited(cls, resp: httpx.Response) -> None:
        """429 with an error body and a Retry-After of seconds or an HTTP date."""
        cls.error(resp, 429)
        retry_after = resp.headers.get("Retry-After")
        assert retry_after, "429 without a Retry-After header"
        if retry_after.isdigit():
            assert int(retry_after) > 0
        else:
            from email.utils import parsedate_to_datetime

            assert parsedate_to_datetime(retry_after), f"bad Retry-After {retry_after!r}"


@pytest.fixture(scope="session")
def contract() -> type[Contract]:
    return Contract


@pytest.fixture
def org(server) -> Org:
    """A fresh organisation on the shared server: tests isolate by having their own."""
    return server.org()


@pytest.fixture
def new_address() -> str:
    """A client address no other test uses, sent as X-Forwarded-For (trusted from 127.0.0.1)."""
    return "10.{}.{}.{}".format(*secrets.token_bytes(3))
