"""Starting and stopping the servers under test: each a real process, pinned to one core.

Every server runs in a fresh temporary working directory (the real server keeps its SQLite file and
storage secret under ./data/ there), with its output in a log file that is shown if it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _loadgen import machine_id, report_body

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SERVER_CPU = "0"
LOAD_CPU = "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") else cmd


# A benchmark's fleet is new all at once and sends as fast as it can: the per-machine and new-machine
# limits are raised so that the server counts (the limiter's cost stays measured) but never refuses.
NO_LIMITS_ENV = {
    "DASHFLEET_REPORT_LIMIT_PER_MINUTE": "1000000",
    "DASHFLEET_PING_LIMIT_PER_MINUTE": "1000000",
    "DASHFLEET_NEW_MACHINES_PER_MINUTE": "1000000",
}


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without any DASHFLEET_* of the caller's shell, plus the repo on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHFLEET_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServerProcess:
    def __init__(self, name: str, cmd: list[str], workdir: Path, env: dict[str, str], port: int) -> None:
        self.name, self.workdir, self.port = name, workdir, port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            pinned(cmd, SERVER_CPU), cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.base_url + "/api/status", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


@contextmanager
def running(name: str, cmd: list[str], workdir: Path, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """cmd may contain "{port}"; the server is started on a free port and stopped on exit."""
    port = free_port()
    server = ServerProcess(name, [c.format(port=port) for c in cmd], workdir, child_env(env), port)
    try:
        server.wait_ready()
        yield server
    except BaseException:
        if server.proc.poll() is not None:
            print(f"{name} exited with {server.proc.returncode}; its log ends:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()


@contextmanager
def temp_workdir(name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"dashfleet-bench-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def admin_cli(workdir: Path, env: dict[str, str] | None, *args: str) -> dict:
    """Run `python -m admin ...` in workdir (as a user would) and return its JSON output."""
    proc = subprocess.run(
        [sys.executable, "-m", "admin", *args],
        cwd=workdir,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"python -m admin {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


@contextmanager
def running_dashfleet(label: str, env: dict[str, str] | None = None) -> Iterator[tuple[ServerProcess, str]]:
    """The real server as a user starts it: `python -m admin org create` then `python -m admin serve`
    in a fresh working directory. Yields the server and the organisation's API key, once a report
    has been accepted (so a broken server fails here, with its answer, not as a fast benchmark)."""
    with temp_workdir(f"dashfleet-{label}") as workdir:
        key = admin_cli(workdir, env, "org", "create", "bench")["api_key"]
        cmd = [sys.executable, "-m", "admin", "serve", "--host", "127.0.0.1", "--port", "{port}"]
        with running("dashfleet", cmd, workdir, env) as server:
            check = httpx.post(
                server.base_url + "/api/fleet/report",
                json=report_body(machine_id(0)),
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            if check.status_code != 200:
                raise RuntimeError(f"a single report got HTTP {check.status_code}: {check.text[:300]}")
            yield server, key


POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# One per bench process: two benchmarks at once (sessions sharing a machine) must not drop each
# other's database.
POSTGRES_BENCH_DB = f"dashfleet_bench_{os.getpid()}"


def postgres_reason_unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL run, and say why
        return f"PostgreSQL at 127.0.0.1:5432 not reachable ({type(exc).__name__}: {exc})"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A database of its own (never the tests' `test`), dropped afterwards; yields its URL."""
    import psycopg

    def recreate(create: bool) -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {POSTGRES_BENCH_DB} WITH (FORCE)")
            if create:
                conn.execute(f"CREATE DATABASE {POSTGRES_BENCH_DB}")

    recreate(create=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{POSTGRES_BENCH_DB}"
    finally:
        recreate(create=False)
