"""Fixtures for the agent's tests: the real agent process, isolated folders, the real server.

The server comes from the suite's shared fixtures (tests/conftest.py: `module_server_factory`,
`ServerProcess`, `Org`); nothing here imitates it. Helpers live in agent_helpers.py.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agent_helpers import REPO_ROOT, AgentDirs, AgentProcess


@pytest.fixture
def agent_dirs(tmp_path) -> AgentDirs:
    return AgentDirs(tmp_path / "agent")


@pytest.fixture
def run_agent(agent_dirs) -> Iterator[Callable[..., AgentProcess]]:
    """Starts `python -m desktop_agent ARGS` processes (or `program ARGS`); kills what is left at the end."""
    started: list[AgentProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, program: list[str] | None = None) -> AgentProcess:
        agent = AgentProcess(list(args), env or agent_dirs.env(), program)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def packaged_agent() -> Path:
    """The one-folder agent as IT installs it (`make agent-dist`: PyInstaller, the .deb's program).
    make rebuilds it only when the agent changed; the .deb test later reuses the same build."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the packaged agent is built and tested here on Linux only")
    done = subprocess.run(["make", "agent-dist"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"make agent-dist failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return REPO_ROOT / "dist" / "dashfleet-agent" / "dashfleet-agent"


@pytest.fixture(scope="module")
def agent_server(module_server_factory):
    """One real SQLite server for a test file; tests isolate by organisation and machine id. Its
    history keeps every sample (agents here report every second, and tests count deliveries there)."""
    return module_server_factory(history_min_spacing_seconds=0)


@pytest.fixture(scope="module")
def fleet_org(agent_server):
    """One organisation per file (making one runs the CLI: seconds); tests differ by machine id."""
    return agent_server.org()


@pytest.fixture
def machine_id() -> str:
    # Quotes and '<' on purpose: the id must travel exactly as given.
    return f'agent-test <{uuid.uuid4().hex[:8]}> "pc"'


@pytest.fixture(scope="module")
def desktop():
    """An X display with a system tray (Xvfb + trayer) for a test file."""
    from agent_helpers import VirtualDesktop

    missing = VirtualDesktop.missing_tools()
    if missing:
        pytest.skip(f"the tray tests need {' and '.join(missing)} (Debian: xvfb, trayer; `make test` installs them)")
    desk = VirtualDesktop()
    yield desk
    desk.close()


@pytest.fixture
def session_bus():
    """A private session D-Bus with no services on it until the test starts them."""
    import shutil

    from agent_helpers import SessionBus

    if not shutil.which("dbus-daemon"):
        pytest.skip("needs dbus-daemon (Debian: dbus; `make test` installs it)")
    bus = SessionBus()
    yield bus
    bus.close()


@pytest.fixture
def dunst(session_bus, desktop):
    """dunst, a real notification server, on the session bus and the test file's display."""
    from agent_helpers import Dunst

    missing = Dunst.missing_tools()
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (Debian: dunst, dbus; `make test` installs them)")
    server = Dunst(session_bus, desktop.display)
    yield server
    server.close()


@pytest.fixture
def make_service(tmp_path, agent_server, fleet_org, machine_id):
    """AgentService in this process against the real server (no threads until started)."""
    from desktop_agent.config import AgentConfig
    from desktop_agent.queue import ReportQueue
    from desktop_agent.reporter import Reporter
    from desktop_agent.service import AgentService

    made = []

    def make(server_url: str | None = None, **config) -> AgentService:
        cfg = AgentConfig(
            server=server_url or agent_server.url, token=fleet_org.api_key, machine_id=machine_id, **config
        )
        reporter = Reporter(cfg.server, cfg.token, max_attempts=1)
        queue = ReportQueue(tmp_path / f"queue-{len(made)}")
        service = AgentService(cfg, reporter, queue, state_dir=str(tmp_path), printer=lambda line: None)
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop()
        service.queue.close()
        service.reporter.close()
