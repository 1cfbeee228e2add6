"""`python -m admin ARGS` for the fixtures, without paying the import for each run.

Most of a `dashfleet-admin` command's second goes into importing SQLAlchemy, SQLModel and our
models; the suite runs hundreds of them (organisations, keys and users for each test). This zygote
imports `admin.cli` once, then forks a child per command: the child is a real process that runs
the real `main(argv)` in its own working directory, environment, standard input and output, and
exits with its status, exactly as `python -m admin` does after its imports. Nothing is mocked; only
the import is shared. (tests/admin/test_cli.py also runs the installed program itself.)

Protocol, one JSON object per line each way:
    -> {"argv": [...], "env": {...}, "cwd": "...", "input": str | null, "timeout": float}
    <- {"returncode": int, "stdout": str, "stderr": str}
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _child(request: dict, out_path: str, err_path: str, in_path: str | None) -> None:
    """In the forked child: become `python -m admin ARGV` and never return."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        stdin = os.open(in_path or os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        for fd, path in ((1, out_path), (2, err_path)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_TRUNC), fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own stdin, as at start-up
        sys.argv = [str(REPO_ROOT / "admin" / "__main__.py"), *request["argv"]]
        from admin.cli import main

        code = main(request["argv"])
    except SystemExit as exc:  # argparse's --help and usage errors, as the real program exits
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - shown as the real program would show it
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed stream: nothing more to say
                pass
        os._exit(code)


def _serve() -> None:
    """The zygote's loop (run with `python cli_zygote.py`)."""
    import admin.cli  # noqa: F401 - the whole point: imported once, inherited by every child

    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryDirectory(prefix="cli-") as folder:
            out_path, err_path = os.path.join(folder, "out"), os.path.join(folder, "err")
            for path in (out_path, err_path):
                open(path, "w").close()
            in_path = None
            if request["input"] is not None:
                in_path = os.path.join(folder, "in")
                Path(in_path).write_text(request["input"])
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(request, out_path, err_path, in_path)
            deadline = time.monotonic() + request["timeout"]
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    status = -1
                    break
                time.sleep(0.002)
            answer = {
                "returncode": os.waitstatus_to_exitcode(status) if status != -1 else -9,
                "timed_out": status == -1,
                "stdout": Path(out_path).read_text(errors="replace"),
                "stderr": Path(err_path).read_text(errors="replace"),
            }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class CliZygote:
    """The test process's side: one zygote for the session, used by one thread at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def run(
        self, argv: list[str], *, env: dict[str, str], cwd: Path, input: str | None, timeout: float
    ) -> subprocess.CompletedProcess:
        request = {"argv": argv, "env": env, "cwd": str(cwd), "input": input, "timeout": timeout}
        with self._lock:
            proc = self._started()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the CLI zygote died (see the test's stderr)")
        answer = json.loads(line)
        args = [sys.executable, "-m", "admin", *argv]
        if answer["timed_out"]:
            raise subprocess.TimeoutExpired(args, timeout, answer["stdout"], answer["stderr"])
        return subprocess.CompletedProcess(args, answer["returncode"], answer["stdout"], answer["stderr"])

    def _started(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, __file__],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        return self._proc

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    _serve()
