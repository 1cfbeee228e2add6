"""run_script's allow-list and runner, with real scripts and real processes (no server needed here;
the end-to-end path through the server is in test_inbox_process.py)."""

from __future__ import annotations

import hashlib
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from desktop_agent import allowlist

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX scripts and permissions")


class AllowList:
    """An allow-list in a machine-wide config folder of its own (XDG_CONFIG_DIRS), and its scripts."""

    def __init__(self, root: Path):
        self.site = root / "site-config"
        self.folder = self.site / "dashfleet"
        self.folder.mkdir(parents=True)
        self.scripts = root / "scripts"
        self.scripts.mkdir(mode=0o755)
        self.entries: dict[str, str] = {}

    @property
    def file(self) -> Path:
        return self.folder / allowlist.ALLOWLIST_FILE_NAME

    def script(self, name: str, body: str, args: list[str] | None = None, **extra: object) -> Path:
        path = self.scripts / f"{name}.sh"
        path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        path.chmod(0o755)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines = [f"[scripts.{name}]", f'path = "{path}"', f'sha256 = "{digest}"']
        lines.append("args = [" + ", ".join(f"'{p}'" for p in (args or [])) + "]")
        lines += [f"{key} = {value}" for key, value in extra.items()]
        self.entries[name] = "\n".join(lines)
        self.file.write_text("\n\n".join(self.entries.values()) + "\n")
        self.file.chmod(0o644)
        return path


@pytest.fixture
def allowed(tmp_path, monkeypatch) -> AllowList:
    listing = AllowList(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(listing.site))
    return listing


def test_an_allowed_script_runs_with_accepted_arguments(allowed, tmp_path):
    allowed.script("hello", 'echo "hello $1 $2"; exit 0', args=["--name=[a-z]+", "-v"])
    result = allowlist.run("hello", ["--name=world", "-v"], timeout=30)
    assert result == allowlist.RunResult("succeeded", 0, "hello --name=world -v\n")


def test_a_failing_script_gives_failed_with_its_exit_status_and_output(allowed):
    allowed.script("broken", "echo 'disk not found' >&2; exit 3")
    result = allowlist.run("broken", [], timeout=30)
    assert (result.state, result.exit_code) == ("failed", 3)
    assert result.output == "disk not found\n"  # stderr is in the output too


def test_a_changed_script_is_refused_and_never_runs(allowed, tmp_path):
    marker = tmp_path / "ran"
    path = allowed.script("clean", f"touch {marker}")
    path.write_text(path.read_text() + "echo tampered\n")  # changed after IT recorded its SHA-256
    result = allowlist.run("clean", [], timeout=30)
    assert result.state == "failed" and result.exit_code is None
    assert result.output.startswith("refused: the script ") and "has changed" in result.output
    assert hashlib.sha256(path.read_bytes()).hexdigest() in result.output
    assert not marker.exists()


@pytest.mark.parametrize(
    "args, why",
    [
        (["--days=1000"], "argument 1 '--days=1000' is not accepted"),
        (["--days=3; rm -rf /"], "is not accepted"),
        (["--days=1", "--days=2", "--days=3"], "accepts at most 2 argument(s), got 3"),
        (["x" * 2000], "longer than 1024"),
    ],
)
def test_refused_arguments_never_run(allowed, tmp_path, args, why):
    marker = tmp_path / "ran"
    allowed.script("purge", f"touch {marker}", args=["--days=[0-9]{1,3}"], max_args=2)
    result = allowlist.run("purge", args, timeout=30)
    assert result.state == "failed" and why in result.output, result.output
    assert not marker.exists()


def test_a_name_not_in_the_list_or_no_list_is_refused(allowed, monkeypatch, tmp_path):
    allowed.script("known", "true")
    result = allowlist.run("unknown", [], timeout=30)
    assert result.output == f"refused: no script named 'unknown' in the allow-list {allowed.file}"
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "elsewhere"))
    result = allowlist.run("known", [], timeout=30)
    assert result.state == "failed" and "this machine has no allow-list" in result.output


def test_files_others_could_change_are_refused(allowed, tmp_path):
    marker = tmp_path / "ran"
    path = allowed.script("job", f"touch {marker}")
    allowed.file.chmod(0o666)
    assert "the allow-list" in allowlist.run("job", [], timeout=30).output
    allowed.file.chmod(0o644)
    path.chmod(0o777)
    assert "writable by group or others" in allowlist.run("job", [], timeout=30).output
    path.chmod(0o755)
    allowed.scripts.chmod(0o777)
    assert "the script's folder" in allowlist.run("job", [], timeout=30).output
    allowed.scripts.chmod(0o755)
    assert not marker.exists()
    assert allowlist.run("job", [], timeout=30).state == "succeeded"
    assert marker.exists()


def test_a_malformed_allow_list_says_where(allowed):
    allowed.file.write_text('[scripts.x]\npath = "relative.sh"\nsha256 = "00"\n')
    result = allowlist.run("x", [], timeout=30)
    assert result.output == f"refused: the allow-list {allowed.file}, [scripts.x]: path must be an absolute path"


def test_the_timeout_kills_the_whole_process_tree(allowed, tmp_path):
    pids = tmp_path / "pids"
    # The script starts a grandchild that ignores SIGTERM and would outlive it, then waits.
    allowed.script(
        "hang",
        f"""
        sh -c 'trap "" TERM; echo $$ >> {pids}; sleep 300' &
        echo $$ >> {pids}
        echo started
        sleep 300
        """,
    )
    started = time.monotonic()
    result = allowlist.run("hang", [], timeout=1)
    assert time.monotonic() - started < 20
    assert result.state == "timed_out" and result.exit_code is None
    assert result.output.startswith("started\n") and "killed after 1 s" in result.output
    written = [int(pid) for pid in pids.read_text().split()]
    assert len(written) == 2
    for pid in written:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid


def test_output_is_capped_at_64_kib_keeping_the_end(allowed):
    # 200,000 numbered lines' worth; the last line must survive.
    allowed.script("chatty", "i=0; while [ $i -lt 30000 ]; do echo line-$i; i=$((i+1)); done; echo THE-END")
    result = allowlist.run("chatty", [], timeout=60)
    assert result.state == "succeeded"
    assert len(result.output.encode()) <= allowlist.OUTPUT_LIMIT_BYTES
    assert result.output.endswith("line-29999\nTHE-END\n")
    assert result.output.startswith("[output cut: the first ")
    assert "line-0\n" not in result.output


def test_one_script_at_a_time(allowed, tmp_path):
    spans = tmp_path / "spans"
    allowed.script("slow", f"echo start $(date +%s.%N) >> {spans}; sleep 0.5; echo end $(date +%s.%N) >> {spans}")
    threads = [threading.Thread(target=allowlist.run, args=("slow", [], 30)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    events = [line.split() for line in spans.read_text().splitlines()]
    assert [kind for kind, _ in events] == ["start", "end"] * 3  # never two starts in a row


def test_no_shell_ever_sees_the_arguments(allowed, tmp_path):
    marker = tmp_path / "injected"
    allowed.script("echoes", 'printf "%s\\n" "$@"', args=[".*"])
    result = allowlist.run("echoes", [f"$(touch {marker})", "; touch x", "`id`"], timeout=30)
    assert result.output == f"$(touch {marker})\n; touch x\n`id`\n"
    assert not marker.exists()
