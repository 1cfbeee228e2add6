"""The notifier: sends the outbox (alert_delivery rows) to the channels, with retries and backoff.

Rows are the truth, wake-ups only hints: this process's own events wake it at once, others' are
found by polling every NOTIFIER_INTERVAL_SECONDS. A delivery is marked sent only after the channel
took it; a crash in between sends it again after the restart, with the same event id (receivers
deduplicate on it), and never loses it.

- PostgreSQL, any number of processes: due rows are claimed with SELECT ... FOR UPDATE SKIP
  LOCKED and stay locked while they are sent, so each is sent by one process; a process that dies
  releases its locks with its connection, and another sends them.
- SQLite: one process sends (the holder of an exclusive lock on data_dir/notifier.lock); no
  database lock is held while sending, so reports are never kept waiting by a slow channel.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from typing import Any

import httpx
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

from admin.core.config import Settings
from admin.repositories import alerts as repo
from admin.services.channels import (
    PEOPLE_KINDS,
    SendFailed,
    notice_for,
    send_apprise,
    send_email,
    send_webhook,
    webhook_body,
)

log = logging.getLogger(__name__)

BATCH = 50
MAX_ATTEMPTS = 30  # with the delay doubling up to an hour: a channel down for about a day
MAX_RETRY_DELAY = 3600.0
OUTAGE_WINDOW_SECONDS = 120.0  # machines going offline this close together make one site outage
OUTAGE_MIN_MACHINES = 5
OUTAGE_MIN_SHARE = 0.30


class Notifier:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.client = httpx.Client(follow_redirects=False)
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_file: Any = None
        self._postgres = engine.dialect.name == "postgresql"

    def pending_count(self) -> int:
        """The outbox's backlog: notices not sent yet, waiting or retrying (GET /metrics)."""
        with self.engine.connect() as conn:
            return repo.count_pending_deliveries(conn)

    def wake(self) -> None:
        """Safe from any thread: a service that changed alerts in a worker thread wakes it too (an
        asyncio.Event is set only on its own loop's thread)."""
        if self._wakeup is None or self._loop is None:
            return
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._wakeup.set()
            return
        try:
            self._loop.call_soon_threadsafe(self._wakeup.set)
        except RuntimeError:
            pass  # the loop closed: nothing to wake (a lost wake-up only delays; rows are the truth)

    async def run(self) -> None:
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                sent = await run_in_threadpool(self.send_due)
            except Exception:
                log.exception("notifier run failed")
                sent = 0
            if sent:
                continue  # more may be due
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.settings.notifier_interval_seconds)
            except TimeoutError:
                pass
            self._wakeup.clear()

    def close(self) -> None:
        self.client.close()
        if self._lock_file is not None:
            self._lock_file.close()

    # -- one round ---------------------------------------------------------------------------------
    def send_due(self) -> int:
        """Send what is due now; returns how many deliveries were handled."""
        now = time.time()
        if self._postgres:
            with self.engine.begin() as conn:
                due = repo.due_deliveries(conn, now=now, limit=BATCH, lock=True)
                if due:
                    self._send(conn, due, now)
                return len(due)
        if not self._sole_sender():
            return 0
        with self.engine.connect() as conn:
            due = repo.due_deliveries(conn, now=now, limit=BATCH, lock=False)
            if not due:
                return 0
            outcomes = self._deliver(conn, due, now)
        with self.engine.begin() as conn:
            self._record(conn, outcomes, now)
        return len(due)

    def _send(self, conn: Connection, due: Any, now: float) -> None:
        self._record(conn, self._deliver(conn, due, now), now)

    def _sole_sender(self) -> bool:
        """SQLite: this process sends if it holds data_dir/notifier.lock (taken once, kept)."""
        if self._lock_file is not None:
            return True
        try:
            import fcntl
        except ImportError:  # Windows: one server process per SQLite file
            self._lock_file = True
            return True
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.settings.data_dir / "notifier.lock", "a")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    def _deliver(self, conn: Connection, due: Any, now: float) -> list[tuple[list[int], str | None, int]]:
        """Sends the due deliveries; (delivery ids, error or None, attempts so far) per send."""
        events = repo.events_by_id(conn, sorted({d.event_id for d in due}))
        channels = repo.channels_by_id(conn, sorted({d.channel_id for d in due}))
        by_channel: dict[int, list[Any]] = defaultdict(list)
        for d in due:
            by_channel[d.channel_id].append(d)
        outcomes: list[tuple[list[int], str | None, int]] = []
        for channel_id, deliveries in by_channel.items():
            channel = channels.get(channel_id)
            if channel is None:
                continue  # deleted (its deliveries went with it)
            config, secret = json.loads(channel.config), json.loads(channel.secret)
            if channel.kind not in PEOPLE_KINDS:  # webhooks: one POST per event, never grouped
                for d in deliveries:
                    error = _attempt(send_webhook, self.client, config, secret, webhook_body(events[d.event_id]))
                    outcomes.append(([d.id], error, d.attempts))
                continue
            group = sorted((events[d.event_id] for d in deliveries), key=lambda e: (e.at, e.id))
            notice = notice_for(group, outage=self._outage(conn, group, now))
            error = _attempt(self._send_notice, channel.kind, config, secret, notice)
            outcomes.append(([d.id for d in deliveries], error, max(d.attempts for d in deliveries)))
        return outcomes

    def _send_notice(self, kind: str, config: dict[str, Any], secret: dict[str, Any], notice: Any) -> None:
        if kind == "email":
            send_email(self.settings, config, notice)
        else:
            send_apprise(secret, notice)

    def _outage(self, conn: Connection, group: list[Any], now: float) -> tuple[int, int] | None:
        """(offline, machines) when the group's offline firings are part of a site outage: at least
        30 % and 5 of the organisation's machines went offline within two minutes."""
        offline = [e for e in group if e.kind == "offline" and e.event == "firing"]
        if len(offline) < 2:
            return None
        org_id = offline[0].org_id
        recent = repo.recent_offline_firings(conn, org_id=org_id, since=now - OUTAGE_WINDOW_SECONDS)
        machines = repo.machine_count(conn, org_id=org_id)
        if recent >= OUTAGE_MIN_MACHINES and machines and recent / machines >= OUTAGE_MIN_SHARE:
            return recent, machines
        return None

    def _record(self, conn: Connection, outcomes: list[tuple[list[int], str | None, int]], now: float) -> None:
        for ids, error, attempts in outcomes:
            if error is None:
                repo.mark_sent(conn, delivery_ids=ids, now=now)
                continue
            tries = attempts + 1
            retry_at = None
            if tries < MAX_ATTEMPTS:
                retry_at = time.time() + min(self.settings.alert_retry_seconds * 2 ** (tries - 1), MAX_RETRY_DELAY)
            log.warning("alert notice failed (attempt %d): %s", tries, error)
            repo.mark_failed(conn, delivery_ids=ids, error=error, retry_at=retry_at)


def _attempt(send: Any, *args: Any) -> str | None:
    try:
        send(*args)
    except SendFailed as exc:
        return str(exc)
    except Exception as exc:
        log.exception("alert channel failed unexpectedly")
        return f"{type(exc).__name__}: {exc}"
    return None
