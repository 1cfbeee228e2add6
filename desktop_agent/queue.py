"""A bounded queue of reports on disk: oldest first, never lost on a crash, never sent twice.

One file per report in the queue's folder, named by a sequence number (`00000000000000000042.json`),
so that the names' order is the reports' age. put() writes a temporary file, fsyncs it, renames it
into place and fsyncs the folder: a report is durable once put() returns, so a kill -9 or a power
cut between queueing and sending loses nothing, and a half-written report is never seen (the
rename is atomic; a temporary file left by a crash is removed at the next open). ack() deletes the
file without an fsync: that survives a kill -9 too, and a power cut can only undo acks made since
the last put, whose reports are then sent again (the one case of a duplicate), never lost. A
report leaves the queue only when the server has accepted it, so a crash while sending means it is
sent again on the next start rather than lost.

Files rather than SQLite: the queue only ever appends, reads the oldest and deletes them, which
files do with one fsync more per report; SQLite's library cost 1.6 MiB of the agent's RSS, a
twentieth of it (docs/benchmarks.md, "Agent"). IT can also see and count what waits.

A lock file, locked exclusively while the queue is open, keeps a second agent with the same
identity out (QueueBusy), so two processes never drain the same reports. The OS releases the lock
when the process dies, however it dies.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections import deque
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# At the default 60 s interval, a week of outage; about 1 KB each.
DEFAULT_MAX_REPORTS = 10_000
_REPORT = re.compile(r"^(\d{20})\.json$")
_TEMPORARY_PREFIX = ".writing-"
_LOCK, _DROPPED = "lock", "dropped"


def write_durably(path: str, temporary: str, data: bytes, folder: str | Path) -> None:
    """Writes `data` to `path` (in `folder`) so that it survives a crash or a power cut whole, or
    not at all: a temporary file, fsynced, renamed into place, the folder fsynced. Also used by the
    agent's store of deliveries (desktop_agent/deliveries.py)."""
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    if sys.platform != "win32":  # Windows cannot open a folder; NTFS journals the rename
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)  # the rename itself survives a power cut
        finally:
            os.close(handle)


class QueueBusy(RuntimeError):
    """Another process holds this queue (another agent for the same server and machine)."""


@dataclass(frozen=True)
class Queued:
    id: int
    text: str  # the report as JSON, sent as it is (no decode and re-encode per send)

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.text)  # written by put() from a dict
        return body


def _lock_exclusively(fd: int) -> bool:
    """Takes an exclusive lock on an open file without waiting; False when another holder has it.
    fcntl's and msvcrt's locks are the OS's own, released when the process ends in any way."""
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class ReportQueue:
    def __init__(self, folder: str | Path, max_reports: int = DEFAULT_MAX_REPORTS):
        if max_reports < 1:
            raise ValueError("max_reports must be at least 1")
        self.folder = Path(folder)
        self.max_reports = max_reports
        self.folder.mkdir(parents=True, exist_ok=True)
        # Report paths are plain strings: with a Path made per report, the agent's RSS kept
        # growing (2 MiB after 40,000 reports); with strings it levels off (docs/benchmarks.md).
        self._prefix = str(self.folder) + os.sep
        # One queue shared by the agent's threads, serialised by a lock.
        self._lock = threading.Lock()
        self._lock_fd = os.open(self.folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        if not _lock_exclusively(self._lock_fd):
            os.close(self._lock_fd)
            raise QueueBusy(f"{self.folder} is in use by another dashfleet-agent")
        ids = []
        for entry in os.scandir(self.folder):
            if entry.name.startswith(_TEMPORARY_PREFIX):
                os.unlink(entry.path)  # a put() that a crash cut short: it never returned
            elif match := _REPORT.match(entry.name):
                ids.append(int(match[1]))
        self._ids = deque(sorted(ids))
        self._next_id = (self._ids[-1] if self._ids else 0) + 1
        self._dropped = self._read_dropped()

    def close(self) -> None:
        with self._lock:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the lock
                self._lock_fd = -1

    def __enter__(self) -> ReportQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, report_id: int, prefix: str = "") -> str:
        return f"{self._prefix}{prefix}{report_id:020d}.json"

    def put(self, body: dict[str, Any]) -> int:
        """Stores a report; when full, drops the oldest. Returns how many were dropped now."""
        text = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        with self._lock:
            report_id = self._next_id
            self._write_durably(self._path(report_id), self._path(report_id, _TEMPORARY_PREFIX), text)
            self._next_id += 1
            self._ids.append(report_id)
            excess = len(self._ids) - self.max_reports
            for _ in range(excess):
                # The newest reports say most about the machine now: the oldest make room.
                self._remove(self._ids.popleft())
            if excess > 0:
                self._dropped += excess
                self._write_dropped()
        if excess > 0:
            log.warning(
                "report queue full (%d): dropped %d oldest report(s), %d dropped in all",
                self.max_reports,
                excess,
                self._dropped,
            )
        return max(excess, 0)

    def _write_durably(self, path: str, temporary: str, data: bytes) -> None:
        write_durably(path, temporary, data, self.folder)

    def peek(self, limit: int = 100) -> list[Queued]:
        """The oldest reports, oldest first, without removing them."""
        with self._lock:
            found = []
            for report_id in list(islice(self._ids, limit)):
                try:
                    with open(self._path(report_id), encoding="utf-8") as file:
                        found.append(Queued(report_id, file.read()))
                except (OSError, UnicodeDecodeError) as exc:
                    # Someone removed or damaged the file: it cannot be sent, and keeping it would
                    # block the reports behind it.
                    log.error("queued report %d is unreadable (%s); dropped it", report_id, exc)
                    self._ids.remove(report_id)
                    self._remove(report_id)
        return found

    def ack(self, report_id: int) -> None:
        """The server has the report (or refused it for good): it leaves the queue."""
        with self._lock:
            if report_id in self._ids:
                self._ids.remove(report_id)  # the oldest, in practice: the front of the deque
                self._remove(report_id)

    def _remove(self, report_id: int) -> None:
        try:
            os.unlink(self._path(report_id))
        except FileNotFoundError:
            pass

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    @property
    def dropped(self) -> int:
        """Reports dropped because the queue was full, over the life of this queue."""
        with self._lock:
            return self._dropped

    def _read_dropped(self) -> int:
        try:
            return int((self.folder / _DROPPED).read_text(encoding="ascii"))
        except (OSError, ValueError):
            return 0  # none dropped yet (or a damaged count: the reports matter, not the count)

    def _write_dropped(self) -> None:
        # Replaced whole, so a crash leaves the old count or the new one; a count needs no fsync.
        temporary = self.folder / (_TEMPORARY_PREFIX + _DROPPED)
        temporary.write_text(str(self._dropped), encoding="ascii")
        os.replace(temporary, self.folder / _DROPPED)


def import_sqlite_queue(old_file: Path, queue: ReportQueue) -> int:
    """Moves the reports of an earlier agent's queue file (SQLite) into `queue`, oldest first, and
    deletes the file. Returns how many moved; 0, and the file kept, when it cannot be read (an
    earlier agent still running holds it): the next start tries again."""
    import sqlite3  # only here: an upgrade's one-off, not worth SQLite's memory in every agent

    try:
        db = sqlite3.connect(old_file, timeout=0.5)
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("BEGIN EXCLUSIVE")  # fails while an old agent has the file open
            rows = db.execute("SELECT body FROM reports ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        log.warning("cannot read the earlier queue file %s (%s); trying again at the next start", old_file, exc)
        return 0
    for (text,) in rows:
        queue.put(json.loads(text))  # written by json.dumps: valid JSON
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{old_file}{suffix}")
        except FileNotFoundError:
            pass
    if rows:
        log.info("moved %d queued report(s) from the earlier queue file %s", len(rows), old_file)
    return len(rows)
