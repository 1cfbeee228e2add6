"""run_script's guard and runner: only scripts that IT named in this machine's allow-list, unchanged,
with arguments the allow-list accepts; the whole process tree killed at the timeout; output capped.

The allow-list is `allowlist.toml` in the machine-wide configuration folder, beside the installers'
agent.toml (docs/agent.md, "Commands"): /etc/xdg/dashfleet/ on Linux (each folder of
$XDG_CONFIG_DIRS is searched, as for agent.toml), C:\\ProgramData\\dashfleet\\ on Windows,
/Library/Application Support/dashfleet/ on macOS. Never the per-user folder: the server and the
person at the machine cannot add to it, only whoever administers the machine.

    [scripts.flush-dns]                      # the name the server asks for
    path = "/usr/local/sbin/flush-dns.sh"    # absolute
    sha256 = "3b2c...64 hex digits"          # of the file as IT installed it
    args = ["--verbose", "--days=[0-9]{1,3}"]  # each argument must match one pattern in full
    max_args = 2                             # at most this many arguments (default 8)
    interpreter = ["/bin/sh"]                # optional: the program that runs the script

The file is read at every run (an edit applies at once). Before every run the script's SHA-256 is
computed and compared: a changed file is refused. On Linux and macOS the allow-list, each script
and the script's folder must be owned by root (or the agent's own user) and writable by nobody
else, or the run is refused. No string from the server ever reaches a shell: the argument list
goes to the OS as a list, after the checks. This module is imported only when a run_script comes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any

import platformdirs

from desktop_agent.config import APP_NAME

log = logging.getLogger(__name__)

ALLOWLIST_FILE_NAME = "allowlist.toml"
OUTPUT_LIMIT_BYTES = 64 * 1024
DEFAULT_MAX_ARGS = 8
MAX_ARG_LENGTH = 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = {"path", "sha256", "args", "max_args", "interpreter"}
# After the script ends (or is killed), how long to wait for the output reader to finish.
_READER_GRACE_SECONDS = 5.0
# One script at a time on a machine, whatever asks.
_one_at_a_time = threading.Lock()


class Refused(Exception):
    """The run is refused; the message says why, for the command's output."""


@dataclass(frozen=True)
class Script:
    name: str
    path: str
    sha256: str
    patterns: tuple[re.Pattern[str], ...]
    max_args: int
    interpreter: tuple[str, ...]


@dataclass(frozen=True)
class RunResult:
    state: str  # "succeeded", "failed" or "timed_out"
    exit_code: int | None
    output: str


def allowlist_candidates() -> list[Path]:
    """Where the allow-list may be, in order: the machine-wide configuration folder(s)."""
    sites = platformdirs.site_config_dir(APP_NAME, appauthor=False, multipath=True).split(os.pathsep)
    return [Path(site) / ALLOWLIST_FILE_NAME for site in sites if site]


def find_allowlist() -> Path | None:
    return next((path for path in allowlist_candidates() if path.is_file()), None)


def check_owner_and_mode(path: Path, what: str) -> None:
    """POSIX: owned by root or the agent's user, writable by nobody else (else Refused). Windows:
    the installer gives the folder an ACL (administrators and SYSTEM only); not checked here."""
    if sys.platform == "win32":
        return
    info = path.stat()
    if info.st_uid not in (0, os.getuid()):
        raise Refused(f"{what} {path} is owned by user id {info.st_uid}, not root or the agent's user")
    if info.st_mode & 0o022:
        raise Refused(f"{what} {path} is writable by group or others (mode {info.st_mode & 0o777:o})")


def load_allowlist(path: Path) -> dict[str, Script]:
    """The file's scripts; Refused naming the file and the entry when anything in it is wrong."""
    check_owner_and_mode(path, "the allow-list")
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise Refused(f"the allow-list {path} cannot be read: {exc}") from None
    scripts = data.get("scripts", {})
    unknown = set(data) - {"scripts"}
    if unknown or not isinstance(scripts, dict):
        raise Refused(f"the allow-list {path} may hold only [scripts.NAME] tables (found {sorted(unknown)})")
    return {name: _entry(path, name, entry) for name, entry in scripts.items()}


def _entry(path: Path, name: str, entry: object) -> Script:
    where = f"the allow-list {path}, [scripts.{name}]"
    if not _NAME.fullmatch(name):
        raise Refused(f"{where}: a name is 1-64 letters, digits, '.', '_' or '-'")
    if not isinstance(entry, dict) or set(entry) - _ENTRY_KEYS:
        raise Refused(f"{where}: the keys are {sorted(_ENTRY_KEYS)}")
    script_path = entry.get("path")
    if not isinstance(script_path, str) or not os.path.isabs(script_path):
        raise Refused(f"{where}: path must be an absolute path")
    if sys.platform == "win32" and script_path.lower().endswith((".bat", ".cmd")):
        # Windows runs these through cmd.exe, which re-parses the arguments (shell metacharacters).
        raise Refused(f"{where}: .bat and .cmd files are not run (use PowerShell, see docs/agent.md)")
    digest = entry.get("sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
        raise Refused(f"{where}: sha256 must be 64 hexadecimal digits")
    patterns = entry.get("args", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise Refused(f"{where}: args must be a list of patterns (strings)")
    try:
        compiled = tuple(re.compile(p) for p in patterns)
    except re.error as exc:
        raise Refused(f"{where}: the pattern {exc.pattern!r} is not a valid regular expression: {exc}") from None
    max_args = entry.get("max_args", DEFAULT_MAX_ARGS)
    if not isinstance(max_args, int) or isinstance(max_args, bool) or not 0 <= max_args <= 64:
        raise Refused(f"{where}: max_args must be a whole number from 0 to 64")
    interpreter = entry.get("interpreter", [])
    if not isinstance(interpreter, list) or not all(isinstance(part, str) and part for part in interpreter):
        raise Refused(f'{where}: interpreter must be a list of strings, e.g. ["/bin/sh"]')
    return Script(name, script_path, digest.lower(), compiled, max_args, tuple(interpreter))


def check_args(script: Script, args: list[str]) -> None:
    if len(args) > script.max_args:
        raise Refused(f"{script.name} accepts at most {script.max_args} argument(s), got {len(args)}")
    for number, arg in enumerate(args, 1):
        if len(arg) > MAX_ARG_LENGTH or "\0" in arg:
            raise Refused(f"argument {number} is longer than {MAX_ARG_LENGTH} characters or holds a NUL")
        if not any(pattern.fullmatch(arg) for pattern in script.patterns):
            raise Refused(f"argument {number} {arg!r} is not accepted by the allow-list entry {script.name!r}")


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(name: object, args: object) -> tuple[Script, list[str]]:
    """The checked command line for run_script {"name", "args"}; Refused with the reason."""
    if not isinstance(name, str) or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise Refused('run_script takes {"name": str, "args": [str]}')
    path = find_allowlist()
    if path is None:
        where = " or ".join(str(p) for p in allowlist_candidates())
        raise Refused(f"this machine has no allow-list ({where}): no script may run")
    scripts = load_allowlist(path)
    script = scripts.get(name)
    if script is None:
        raise Refused(f"no script named {name!r} in the allow-list {path}")
    check_args(script, args)
    script_file = Path(script.path)
    if not script_file.is_file():
        raise Refused(f"the script {script.path} of {name!r} does not exist")
    check_owner_and_mode(script_file, "the script")
    check_owner_and_mode(script_file.parent, "the script's folder")
    actual = file_sha256(script.path)
    if actual != script.sha256:
        raise Refused(
            f"the script {script.path} has changed: its SHA-256 is {actual}, the allow-list expects {script.sha256}"
        )
    return script, [*script.interpreter, script.path, *args]


def cap_output(data: bytes, dropped: int) -> str:
    """The output as text, at most OUTPUT_LIMIT_BYTES in UTF-8, the end kept, a cut said first."""
    text = data.decode("utf-8", errors="replace")
    if dropped:
        note = f"[output cut: the first {dropped} bytes were dropped]\n"
        room = OUTPUT_LIMIT_BYTES - len(note.encode())
        encoded = text.encode()
        if len(encoded) > room:
            text = encoded[-room:].decode("utf-8", errors="ignore")
        text = note + text
    return text


class _Tail:
    """Reads a stream to its end, keeping only the last OUTPUT_LIMIT_BYTES (memory stays bounded)."""

    def __init__(self, stream: BufferedReader) -> None:
        self.data = bytearray()
        self.dropped = 0
        self._thread = threading.Thread(target=self._read, args=(stream,), name="dashfleet-script-output", daemon=True)
        self._thread.start()

    def _read(self, stream: BufferedReader) -> None:
        with stream:
            for chunk in iter(lambda: stream.read1(1 << 16), b""):
                self.data += chunk
                excess = len(self.data) - OUTPUT_LIMIT_BYTES
                if excess > 0:
                    del self.data[:excess]
                    self.dropped += excess

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def kill_tree(pid: int) -> None:
    """Ends a script's whole process tree: its process group (POSIX), or taskkill /T (Windows)."""
    if sys.platform == "win32":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        return
    import signal

    try:
        os.killpg(pid, signal.SIGKILL)  # the group's id is the script's pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def run(
    name: object,
    args: object,
    timeout: float,
    on_start: Callable[[int], None] = lambda pid: None,
) -> RunResult:
    """Runs an allow-listed script; one at a time (a second call waits for the first to end)."""
    try:
        script, argv = prepare(name, args)
    except Refused as exc:
        log.warning("run_script refused: %s", exc)
        return RunResult("failed", None, f"refused: {exc}")
    with _one_at_a_time:
        try:
            script, argv = prepare(name, args)  # again: the file may have changed while we waited
        except Refused as exc:
            return RunResult("failed", None, f"refused: {exc}")
        return _run(script, argv, timeout, on_start)


def _run(script: Script, argv: list[str], timeout: float, on_start: Callable[[int], None]) -> RunResult:
    options: dict[str, Any] = {}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
    else:
        options["start_new_session"] = True  # its own process group, killed whole
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=os.path.dirname(script.path),
            close_fds=True,
            **options,
        )
    except OSError as exc:
        return RunResult("failed", None, f"the script {script.path} could not be started: {exc}")
    log.info("run_script %s: started %s (pid %d, timeout %g s)", script.name, argv, proc.pid, timeout)
    on_start(proc.pid)
    assert isinstance(proc.stdout, BufferedReader)
    tail = _Tail(proc.stdout)
    timed_out = False
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_tree(proc.pid)
        code = proc.wait()
    # What the script left running in its group (a background child holding the output) ends
    # with it, so nothing it started outlives the run and the output has an end.
    kill_tree(proc.pid)
    tail.join(_READER_GRACE_SECONDS)
    data, dropped = bytes(tail.data), tail.dropped
    elapsed = time.monotonic() - started
    if timed_out:
        log.warning("run_script %s: killed after the %g s timeout", script.name, timeout)
        data += f"\n[timed out: the script and its processes were killed after {timeout:g} s]".encode()
        excess = len(data) - OUTPUT_LIMIT_BYTES
        if excess > 0:
            data, dropped = data[excess:], dropped + excess
        return RunResult("timed_out", None, cap_output(data, dropped))
    log.info("run_script %s: exit status %d after %.1f s", script.name, code, elapsed)
    return RunResult("succeeded" if code == 0 else "failed", code, cap_output(data, dropped))
