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

What these hand out (ServerProcess, Org, sample_report, the Contract checks) lives in
tests/helpers/, which test files import: a conftest holds fixtures only.
"""

from __future__ import annotations

import fcntl
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.api import Contract, Org
from tests.helpers.servers import (
    BACKENDS,
    CLI,
    CLI_COMMANDS,
    REDIS_HOST,
    REDIS_PORT,
    REDIS_TEST_DB,
    SPENT,
    PostgresDatabases,
    ServerFactory,
    ServerProcess,
    service_unavailable,
)


def pytest_sessionfinish(session) -> None:
    CLI.close()
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: its figures go to the controller
        session.config.workeroutput["dashfleet_spent"] = dict(SPENT)
        session.config.workeroutput["dashfleet_commands"] = dict(CLI_COMMANDS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Tests marked `machine_wide` install packages with dpkg or build into the repository's dist/
    and build/: under pytest-xdist they take turns, whichever worker runs them. The lock covers a
    test's whole protocol, so fixtures set up or torn down with it (a build, a purge) are inside.
    (Not xdist's own `xdist_group`: with pytest 9.2 its `--dist loadgroup` no longer groups.)"""
    if item.get_closest_marker("machine_wide") is None:
        return (yield)
    with open(Path(tempfile.gettempdir()) / "dashfleet-tests-machine-wide.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """The controller adds up its workers' figures for the summary below."""
    output = getattr(node, "workeroutput", {})
    for name, value in output.get("dashfleet_spent", {}).items():
        SPENT[name] += value
    CLI_COMMANDS.update(output.get("dashfleet_commands", {}))


def pytest_terminal_summary(terminalreporter) -> None:
    if SPENT["cli runs"] or SPENT["server starts"]:
        terminalreporter.write_line(
            "dashfleet fixtures: {cli runs} CLI runs ({cli seconds:.0f} s), {server starts} server starts "
            "({server start seconds:.0f} s)".format(**SPENT)
        )
        terminalreporter.write_line(
            "dashfleet fixtures' commands: " + ", ".join(f"{n} {cmd}" for cmd, n in CLI_COMMANDS.most_common(8))
        )


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
