"""The on-disk queue: bounded (newest kept), oldest first, each report once, survives kill -9."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from agent_helpers import REPO_ROOT

from desktop_agent.queue import QueueBusy, ReportQueue, import_sqlite_queue


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "queue-0123456789abcdef"


def report_files(path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.endswith(".json"))


def bodies(queue: ReportQueue) -> list[int]:
    return [item.body["n"] for item in queue.peek(1000)]


def test_oldest_first_and_each_report_leaves_once_acknowledged(path):
    with ReportQueue(path) as queue:
        for n in range(5):
            queue.put({"n": n})
        assert bodies(queue) == [0, 1, 2, 3, 4]
        first = queue.peek(1)[0]
        queue.ack(first.id)
        queue.ack(first.id)  # a second ack of the same report changes nothing
        assert bodies(queue) == [1, 2, 3, 4] and len(queue) == 4


def test_full_queue_keeps_the_newest_and_counts_what_it_dropped(path, caplog):
    with caplog.at_level(logging.WARNING, logger="desktop_agent.queue"), ReportQueue(path, max_reports=3) as queue:
        dropped = [queue.put({"n": n}) for n in range(5)]
        assert dropped == [0, 0, 0, 1, 1]
        assert bodies(queue) == [2, 3, 4]
        assert queue.dropped == 2
    assert "dropped 1 oldest report(s), 2 dropped in all" in caplog.text


def test_reports_and_the_dropped_count_survive_a_restart(path):
    with ReportQueue(path, max_reports=2) as queue:
        for n in range(3):
            queue.put({"n": n})
    with ReportQueue(path, max_reports=2) as queue:
        assert bodies(queue) == [1, 2] and queue.dropped == 1
        queue.put({"n": 3})
        assert bodies(queue) == [2, 3]


def test_ids_are_never_reused_so_order_stays_age(path):
    with ReportQueue(path) as queue:
        queue.put({"n": 0})
        queue.ack(queue.peek(1)[0].id)
        queue.put({"n": 1})
        queue.put({"n": 2})
        ids = [item.id for item in queue.peek()]
        assert ids == sorted(ids) and ids[0] > 1


def test_a_report_that_is_not_json_is_refused_and_nothing_is_stored(path):
    with ReportQueue(path) as queue:
        with pytest.raises(ValueError):
            queue.put({"cpu_percent": float("nan")})
        with pytest.raises(TypeError):
            queue.put({"when": object()})
        assert len(queue) == 0
    assert sorted(p.name for p in path.iterdir()) == ["lock"]  # no file, not even a temporary one


def test_one_file_per_report_named_in_order_of_age(path):
    with ReportQueue(path) as queue:
        for n in range(3):
            queue.put({"n": n})
    names = report_files(path)
    assert names == [f"{i:020d}.json" for i in (1, 2, 3)]
    assert [json.loads((path / name).read_text())["n"] for name in names] == [0, 1, 2]


def test_a_write_a_crash_cut_short_is_cleared_and_the_rest_kept(path):
    with ReportQueue(path) as queue:
        queue.put({"n": 0})
    (path / ".writing-00000000000000000002.json").write_text('{"n": 1')  # died before the rename
    with ReportQueue(path) as queue:
        assert bodies(queue) == [0]
        queue.put({"n": 2})
        assert bodies(queue) == [0, 2]
    assert not any(p.name.startswith(".writing-") for p in path.iterdir())


def test_a_report_file_removed_behind_its_back_is_dropped_not_a_blockage(path, caplog):
    with ReportQueue(path) as queue:
        for n in range(3):
            queue.put({"n": n})
        (path / f"{2:020d}.json").unlink()
        with caplog.at_level(logging.ERROR, logger="desktop_agent.queue"):
            assert bodies(queue) == [0, 2]
        assert len(queue) == 2
    assert "queued report 2 is unreadable" in caplog.text


def test_files_that_are_not_reports_are_left_alone(path):
    path.mkdir(parents=True)
    (path / "README.txt").write_text("notes")
    (path / "12.json").write_text("{}")  # not a queue name
    with ReportQueue(path) as queue:
        assert len(queue) == 0
        queue.put({"n": 0})
        assert bodies(queue) == [0]
    assert (path / "README.txt").exists() and (path / "12.json").exists()


def earlier_queue_file(file, bodies_: list[dict], dropped: int = 0):
    """A queue file as agents before the file queue left it (SQLite, the same schema)."""
    db = sqlite3.connect(file)
    db.executescript(
        "CREATE TABLE reports (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);"
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    )
    db.executemany("INSERT INTO reports (body) VALUES (?)", [(json.dumps(b),) for b in bodies_])
    db.execute("INSERT INTO counters VALUES ('dropped', ?)", (dropped,))
    db.commit()
    db.close()


def test_reports_of_an_earlier_sqlite_queue_move_over_oldest_first(path, caplog):
    old = path.with_name(path.name + ".sqlite3")
    old.parent.mkdir(parents=True)
    earlier_queue_file(old, [{"n": n} for n in range(3)])
    with ReportQueue(path) as queue, caplog.at_level(logging.INFO, logger="desktop_agent.queue"):
        assert import_sqlite_queue(old, queue) == 3
        assert bodies(queue) == [0, 1, 2]
    assert not old.exists()
    assert "moved 3 queued report(s)" in caplog.text


def test_an_earlier_queue_still_in_use_is_kept_for_the_next_start(path, caplog):
    old = path.with_name(path.name + ".sqlite3")
    old.parent.mkdir(parents=True)
    earlier_queue_file(old, [{"n": 0}])
    holder = sqlite3.connect(old)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")  # as an earlier agent, still running, holds it
    try:
        with ReportQueue(path) as queue, caplog.at_level(logging.WARNING, logger="desktop_agent.queue"):
            assert import_sqlite_queue(old, queue) == 0
            assert len(queue) == 0
    finally:
        holder.close()
    assert old.exists() and "trying again at the next start" in caplog.text
    with ReportQueue(path) as queue:
        assert import_sqlite_queue(old, queue) == 1 and bodies(queue) == [0]


def run_python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_a_second_process_cannot_open_a_queue_in_use(path):
    with ReportQueue(path) as queue:
        queue.put({"n": 0})
        other = run_python(f"""
            from desktop_agent.queue import ReportQueue, QueueBusy
            try:
                ReportQueue({str(path)!r})
            except QueueBusy as exc:
                print("busy:", exc)
        """)
        out, err = other.communicate(timeout=30)
        assert out.startswith("busy:") and "in use by another dashfleet-agent" in out, err
    # Closed: now it opens, with the report intact.
    with ReportQueue(path) as queue:
        assert bodies(queue) == [0]


def test_opening_twice_in_one_process_is_refused_too(path):
    with ReportQueue(path), pytest.raises(QueueBusy):
        ReportQueue(path)


def test_kill_9_between_queueing_and_sending_loses_nothing_and_duplicates_nothing(path):
    """A real process queues reports, takes one out to "send", and is killed with SIGKILL."""
    child = run_python(f"""
        import sys, time
        from desktop_agent.queue import ReportQueue
        queue = ReportQueue({str(path)!r})
        for n in range(3):
            queue.put({{"n": n}})
        queue.ack(queue.peek(1)[0].id)          # report 0 was accepted by the server
        in_flight = queue.peek(1)[0]            # report 1 is being sent when the process dies
        print("in flight", in_flight.body["n"], flush=True)
        time.sleep(600)
    """)
    assert child.stdout.readline().strip() == "in flight 1"
    child.kill()  # SIGKILL: no cleanup, no commit, no close
    child.wait(timeout=10)

    with ReportQueue(path) as queue:
        # 0 was acknowledged before the crash: gone for good. 1 was not: it is still first in line.
        assert bodies(queue) == [1, 2]
