"""The agent's record of each message and command it received, on disk: what makes a command run
at most once and a state change reach the server however the agent ends.

One JSON file per delivery in the store's folder (named by a hash of the delivery id, so a server
string never becomes a path), written the way the report queue writes (temporary file, fsync,
rename, folder fsync: desktop_agent/queue.py's write_durably). A record holds the item as served,
the state the server should hear next (`want`) and the last one it accepted (`posted`), and for a
command whether it was started (the executed-ids store: set, and on disk, before the command
runs, so a restart, a crash or a retried request never runs it again) and its result.

Records are kept until a day after their item expires (by the server's clock as the agent last
knew it), and longer while a state change still waits to be posted, so a late retry of a served
item still finds its record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from desktop_agent.queue import write_durably

log = logging.getLogger(__name__)

# Kept this long after the item's expiry, so a record outlives any retry of its item.
KEEP_AFTER_EXPIRY_SECONDS = 86400.0
# A state change the server never took (it stayed unreachable) is given up this long after expiry.
GIVE_UP_AFTER_EXPIRY_SECONDS = 30 * 86400.0
_SUFFIX = ".json"
_TEMPORARY_PREFIX = ".writing-"

# The states of a delivery, in the order they move (the protocol's forward moves).
MESSAGE_STATES = ("queued", "delivered", "displayed", "acknowledged")
COMMAND_STATES = ("queued", "delivered", "running", "succeeded", "failed", "timed_out")
FINAL_COMMAND_STATES = frozenset({"succeeded", "failed", "timed_out"})


@dataclass
class Delivery:
    delivery_id: str
    type: str  # "message" or "command"
    expires: float  # the item's expiry, server's Unix time
    item: dict[str, Any]  # the item as the inbox served it
    want: str | None = None  # the state the server should hear next (None: nothing to post)
    posted: str | None = None  # the last state the server accepted
    closed: str | None = None  # the server refused a move (cancelled, expired): never act on it
    started: bool = False  # a command: recorded before it runs; never run again once True
    result: dict[str, Any] | None = None  # a command's end: {"state", "exit_code", "output"}
    process: list[float] | None = field(default=None)  # a running script: [pid, its create time]

    @property
    def pending(self) -> bool:
        """A state change waits to be posted."""
        return self.closed is None and self.want is not None and self.want != self.posted

    def reached(self, state: str) -> bool:
        """Has the server accepted `state` or a later one?"""
        order = MESSAGE_STATES if self.type == "message" else COMMAND_STATES
        if self.posted is None or state not in order or self.posted not in order:
            return False
        if self.type == "command" and state in FINAL_COMMAND_STATES:
            return self.posted == state
        return order.index(self.posted) >= order.index(state)


class DeliveryStore:
    """The records, on disk and in memory; safe to use from the agent's threads."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._records: dict[str, Delivery] = {}
        for entry in os.scandir(self.folder):
            if entry.name.startswith(_TEMPORARY_PREFIX):
                os.unlink(entry.path)  # a write that a crash cut short: the old record stands
            elif entry.name.endswith(_SUFFIX):
                record = self._read(entry.path)
                if record is not None:
                    self._records[record.delivery_id] = record

    @staticmethod
    def _read(path: str) -> Delivery | None:
        try:
            with open(path, encoding="utf-8") as file:
                return Delivery(**json.load(file))
        except (OSError, ValueError, TypeError) as exc:
            # Written whole or not at all, so this is damage from outside: say so, keep going.
            log.error("the delivery record %s is unreadable (%s); ignored", path, exc)
            return None

    def _name(self, delivery_id: str) -> str:
        return hashlib.sha256(delivery_id.encode()).hexdigest()[:32] + _SUFFIX

    def get(self, delivery_id: str) -> Delivery | None:
        with self._lock:
            return self._records.get(delivery_id)

    def all(self) -> list[Delivery]:
        with self._lock:
            return list(self._records.values())

    def executed(self, command_id: str) -> bool:
        """Was this command started here (under any delivery)?"""
        with self._lock:
            return any(
                r.started and r.type == "command" and r.item.get("command", {}).get("command_id") == command_id
                for r in self._records.values()
            )

    def save(self, record: Delivery) -> None:
        """Stores the record durably: once this returns, a crash or a power cut keeps it."""
        data = json.dumps(asdict(record), separators=(",", ":")).encode()
        name = self._name(record.delivery_id)
        with self._lock:
            write_durably(str(self.folder / name), str(self.folder / (_TEMPORARY_PREFIX + name)), data, self.folder)
            self._records[record.delivery_id] = record

    def prune(self, server_now: float | None = None) -> int:
        """Forgets records long past their expiry; returns how many."""
        now = time.time() if server_now is None else server_now
        gone = []
        with self._lock:
            for record in list(self._records.values()):
                past = now - record.expires
                if past > GIVE_UP_AFTER_EXPIRY_SECONDS or (past > KEEP_AFTER_EXPIRY_SECONDS and not record.pending):
                    gone.append(record)
                    del self._records[record.delivery_id]
                    try:
                        os.unlink(self.folder / self._name(record.delivery_id))
                    except FileNotFoundError:
                        pass
        for record in gone:
            if record.pending:
                log.warning("gave up posting %r for delivery %s (expired long ago)", record.want, record.delivery_id)
        return len(gone)


@dataclass(frozen=True)
class Message:
    """A message as the person sees it (the service's state, listed by the tray)."""

    delivery_id: str
    message_id: str
    title: str
    body: str
    severity: str  # "info", "warning" or "critical"
    created: float
    displayed: bool
    acknowledged: bool

    @classmethod
    def of(cls, record: Delivery) -> Message:
        message = record.item.get("message", {})
        state = record.want or record.posted or "delivered"
        return cls(
            delivery_id=record.delivery_id,
            message_id=str(message.get("message_id", "")),
            title=str(message.get("title", "")),
            body=str(message.get("body", "")),
            severity=str(message.get("severity", "info")),
            created=float(message.get("created") or 0.0),
            displayed=state in ("displayed", "acknowledged"),
            acknowledged=state == "acknowledged",
        )
