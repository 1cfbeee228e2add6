"""Messages and commands from the server: the long poll on the inbox, on a thread of its own.

The flags come from GET /api/config (at start, on refresh_config, and hourly while both are off);
with both `messaging` and `commands` off the inbox is never asked. Otherwise the thread holds
`GET /api/agent/inbox?wait=25`, which the server answers the moment an item is created; a heartbeat
whose answer says `"inbox": true` wakes the thread at once, so behind a proxy that cuts long
requests the next heartbeat still brings the item. Errors back off (2 s doubling to 5 minutes, with
jitter); the thread never spins, and it shares nothing with the report and heartbeat loops but the
HTTP client's connection pool, so it never delays them.

Every item becomes a record in the DeliveryStore (on disk) before anything is done with it, and
every state change goes to the server through the record (`want`), so a failed post is retried
from disk and never lost (docs/agent.md, "Messages and commands"). Commands run one at a time on
a worker thread of their own (desktop_agent/commands.py), imported and started with the first
command.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from common.constants import PATH_CONFIG
from desktop_agent.deliveries import FINAL_COMMAND_STATES, MESSAGE_STATES, Delivery, DeliveryStore, Message
from desktop_agent.reporter import Backoff, Reporter

if TYPE_CHECKING:
    from desktop_agent.service import AgentService

log = logging.getLogger(__name__)

PATH_INBOX = "/api/agent/inbox"
PATH_DELIVERY = "/api/agent/deliveries/{}"
LONG_POLL_SECONDS = 25
# The answer to a long poll may take this much longer than the wait (a busy server, the network).
LONG_POLL_SLACK_SECONDS = 10.0
# With both features off, /api/config is read again this often (a server may turn one on).
CONFIG_RECHECK_SECONDS = 3600.0
# A poll that returned sooner than this without anything new is not repeated at once.
MIN_POLL_SECONDS = 1.0
SEVERITIES = ("info", "warning", "critical")
COMMAND_KINDS = ("report_now", "refresh_config", "restart_agent", "run_script")
# How long a message waits at start for the tray to be up (or known to be unavailable).
UI_READY_SECONDS = 30.0
# The messages the service keeps listed (the newest); older ones stay on disk until they expire.
MAX_LISTED_MESSAGES = 20


def _text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


class Inbox:
    def __init__(
        self, service: AgentService, reporter: Reporter, store: DeliveryStore, rng: random.Random | None = None
    ):
        self.service = service
        self.reporter = reporter
        self.store = store
        self.features: dict[str, bool] = {"messaging": False, "commands": False}
        self.polls = 0  # inbox requests made (for the tests and the log)
        self._wake = threading.Event()
        self._backoff = Backoff(base=2.0, cap=300.0, rng=rng)
        self._config_due = 0.0  # time.monotonic() at which /api/config is read next
        self._post_lock = threading.Lock()  # one state post at a time: they never overtake each other
        self._commands: queue.Queue[Delivery | None] = queue.Queue()
        self._queued_commands: set[str] = set()
        self._worker: threading.Thread | None = None
        self._thread: threading.Thread | None = None
        self.running_pid: int | None = None  # the script run_script runs now, for stop()

    # --- life ---

    def start(self) -> None:
        self._restore()
        self._thread = threading.Thread(target=self._loop, name="dashfleet-inbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Poll at once: the heartbeat said something waits. With both features off as last read,
        that means the server turned one on: read them again first."""
        if not (self.features["messaging"] or self.features["commands"]):
            self._config_due = 0.0
        self._wake.set()

    def refresh_config(self) -> dict[str, bool]:
        """Reads the flags again now (refresh_config); returns them."""
        self._read_config()
        self._wake.set()
        return dict(self.features)

    def close(self, timeout: float = 5.0) -> None:
        """At stop: a running script is killed (its result says so), the command worker is given a
        few seconds to record and post it. The long poll is not waited for: closing the HTTP
        client ends it, and nothing it does is left half-written on disk."""
        self._wake.set()
        if self.running_pid is not None:
            from desktop_agent.allowlist import kill_tree

            kill_tree(self.running_pid)
        if self._worker is not None:
            self._commands.put(None)
            self._worker.join(timeout)

    def _sleep(self, seconds: float) -> bool:
        """Waits until woken, stopped or the time is up; True when the agent is stopping."""
        self._wake.wait(seconds)
        self._wake.clear()
        return self.service.stopping

    # --- the loop ---

    def _loop(self) -> None:
        try:
            self._show_unseen()
        except Exception:
            log.exception("unexpected error showing the messages kept from before")
        while not self.service.stopping:
            try:
                delay = self._cycle()
            except Exception:
                log.exception("unexpected error in the inbox; it carries on")
                delay = self._backoff.next_delay()
            if delay and self._sleep(delay):
                return

    def _cycle(self) -> float:
        """One round; returns how long to wait before the next (0: at once)."""
        credentials = self.service.credentials
        if credentials is not None and not credentials.key:
            return self._backoff.next_delay()  # not enrolled yet: the report loop enrols first
        if time.monotonic() >= self._config_due and not self._read_config():
            return self._backoff.next_delay()
        if not (self.features["messaging"] or self.features["commands"]):
            return max(0.0, self._config_due - time.monotonic())
        self.flush()
        self.store.prune(self._server_now())
        started = time.monotonic()
        self.polls += 1
        params: dict[str, str | int] = {"machine_id": self.service.config.machine_id, "wait": LONG_POLL_SECONDS}
        outcome = self.reporter.get(PATH_INBOX, params, timeout=LONG_POLL_SECONDS + LONG_POLL_SLACK_SECONDS)
        if self.service.stopping:
            return 0.0
        if not outcome.ok:
            if outcome.status == 404:
                self._config_due = 0.0  # the features may be off now: read them before polling again
            log.warning("the inbox cannot be read (%s)", outcome.error)
            return self._backoff.next_delay(outcome.retry_after)
        self._backoff.reset()
        body = outcome.body
        features = body.get("features")
        if isinstance(features, dict):
            self._set_features(features)
        items = body.get("items")
        new = self.handle(items if isinstance(items, list) else [])
        if not new and time.monotonic() - started < MIN_POLL_SECONDS:
            # An answer at once with nothing new (items we already have, whose posts failed; a
            # proxy that answers early): never ask again in a tight loop.
            return self._backoff.next_delay()
        return 0.0

    def _read_config(self) -> bool:
        outcome = self.reporter.get(PATH_CONFIG)
        features = outcome.body.get("FEATURES") if outcome.ok else None
        if not isinstance(features, dict):
            log.warning("cannot read the server's features from %s (%s)", PATH_CONFIG, outcome.error or "no FEATURES")
            return False
        self._set_features(features)
        self._config_due = time.monotonic() + CONFIG_RECHECK_SECONDS
        return True

    def _set_features(self, features: dict[str, Any]) -> None:
        new = {name: features.get(name) is True for name in ("messaging", "commands")}
        if new != self.features:
            on = [name for name, value in new.items() if value] or ["none"]
            log.info("server features: %s", ", ".join(on))
        self.features = new

    def _server_now(self) -> float:
        return time.time() + (self.service.state.clock_offset or 0.0)

    # --- items ---

    def handle(self, items: list[object]) -> int:
        """Takes the inbox's items; returns how many were new."""
        new = 0
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("delivery_id"), str):
                log.warning("ignored an inbox item without a delivery id: %.200r", item)
                continue
            record = self.store.get(item["delivery_id"])
            if record is not None:
                # Served again: our `delivered` did not reach the server. Post it again; never act twice.
                self.post(record)
                if record.type == "command" and not record.started and record.closed is None:
                    self._queue_command(record)
                continue
            kind = item.get("type")
            if kind == "message" and self.features["messaging"]:
                new += self._new_message(item)
            elif kind == "command" and self.features["commands"]:
                new += self._new_command(item)
            else:
                log.warning("ignored an inbox item of type %r (unknown, or its feature is off)", kind)
        return new

    def _record(self, item: dict[str, Any]) -> Delivery:
        expires = item.get("expires")
        record = Delivery(
            delivery_id=item["delivery_id"],
            type=item["type"],
            expires=float(expires) if isinstance(expires, (int, float)) else self._server_now() + 86400,
            item=item,
            want="delivered",
        )
        self.store.save(record)  # on disk before the server hears `delivered`
        return record

    def _new_message(self, item: dict[str, Any]) -> int:
        message = item.get("message")
        if not isinstance(message, dict) or message.get("severity", "info") not in SEVERITIES:
            log.warning("ignored a malformed message: %.300r", item)
            return 0
        record = self._record(item)
        if self.post(record) == "closed":
            return 1
        self._list_messages()
        self._show(record)
        return 1

    def _new_command(self, item: dict[str, Any]) -> int:
        record = self._record(item)
        if self.post(record) != "closed":
            self._queue_command(record)
        return 1

    # --- messages ---

    def _list_messages(self) -> None:
        now = self._server_now()
        records = [r for r in self.store.all() if r.type == "message" and r.closed is None and r.expires > now]
        messages = sorted((Message.of(r) for r in records), key=lambda m: (-m.created, m.delivery_id))
        self.service.set_messages(messages[:MAX_LISTED_MESSAGES])

    def _show(self, record: Delivery) -> None:
        """Puts a message in front of the person; `displayed` once that happened."""
        message = Message.of(record)
        # The tray says whether it lists messages once it is up (or failed to start).
        self.service.ui_ready.wait(UI_READY_SECONDS)
        shown = _notify(message, on_acknowledge=lambda: self.acknowledge(record.delivery_id))
        if self.service.message_ui:
            if shown:
                self._advance_message(record.delivery_id, "displayed")
            else:
                log.info("message %r could not be shown as a notification; it is in the tray's menu", message.title)
            return
        # Headless: the log and the status output are where the person (or IT) reads it.
        body = " / ".join(line.strip() for line in message.body.splitlines() if line.strip())
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} MESSAGE {message.severity}: {message.title}" + (
            f" | {body}" if body else ""
        )
        level = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}[message.severity]
        self.service.say(line, level)
        self._advance_message(record.delivery_id, "displayed")

    def mark_displayed(self, delivery_id: str) -> None:
        self._advance_message(delivery_id, "displayed", background=True)

    def show_message(self, delivery_id: str) -> None:
        """Shows a message again as a notification (the tray's "Show"); `displayed` once shown."""
        record = self.store.get(delivery_id)
        if record is None or record.type != "message":
            return

        def show() -> None:
            if _notify(Message.of(record), on_acknowledge=lambda: self.acknowledge(delivery_id)):
                self._advance_message(delivery_id, "displayed")

        threading.Thread(target=show, name="dashfleet-notify-message", daemon=True).start()

    def acknowledge(self, delivery_id: str) -> None:
        self._advance_message(delivery_id, "acknowledged", background=True)

    def _advance_message(self, delivery_id: str, state: str, background: bool = False) -> None:
        record = self.store.get(delivery_id)
        if record is None or record.type != "message" or record.closed is not None:
            return
        current = record.want or record.posted or "delivered"
        if MESSAGE_STATES.index(state) <= MESSAGE_STATES.index(current):
            return  # already there (or beyond)
        record.want = state
        self.store.save(record)
        self._list_messages()
        if background:
            # Called from the tray or a notification's button: never block them on the network.
            threading.Thread(target=self.post, args=(record,), name="dashfleet-post", daemon=True).start()
        else:
            self.post(record)

    # --- commands ---

    def _queue_command(self, record: Delivery) -> None:
        if record.delivery_id in self._queued_commands:
            return
        self._queued_commands.add(record.delivery_id)
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="dashfleet-commands", daemon=True)
            self._worker.start()
        self._commands.put(record)

    def _work(self) -> None:
        from desktop_agent import commands  # only once a command came

        while not self.service.stopping:
            record = self._commands.get()
            if record is None:
                return
            try:
                commands.execute(self, record)
            except Exception:
                log.exception("unexpected error running command delivery %s", record.delivery_id)
            finally:
                self._queued_commands.discard(record.delivery_id)

    def advance(self, record: Delivery, state: str) -> bool:
        """Moves a command's delivery to `state` and waits until the server accepted it (True), or
        refused it (False: cancelled, expired), retrying with backoff while it cannot be reached."""
        if not record.reached(state):
            record.want = state
            self.store.save(record)
        backoff = Backoff(base=2.0, cap=60.0)
        while not self.service.stopping:
            if self.post(record) == "closed":
                return False
            if record.reached(state):
                return True
            if self.service.sleep(backoff.next_delay()):
                break
        return False

    # --- posting states ---

    def flush(self) -> None:
        """Posts every state change that waits (after a failure, or from before a restart)."""
        for record in self.store.all():
            pending = record.pending and record.delivery_id not in self._queued_commands
            if pending and self.post(record) == "failed":
                return  # the server is not there: the next round tries again

    def post(self, record: Delivery) -> str:
        """Posts the record's wanted state; "ok" (accepted, or nothing to post), "closed" (never act
        on it) or "failed" (kept on disk, retried later)."""
        with self._post_lock:
            if record.closed is not None:
                return "closed"
            if not record.pending:
                return "ok"
            want = record.want
            result = record.result or {}
            final = want in FINAL_COMMAND_STATES
            body = {
                "machine_id": self.service.config.machine_id,
                "state": want,
                "exit_code": result.get("exit_code") if final else None,
                "output": result.get("output") if final else None,
            }
            outcome = self.reporter.post(PATH_DELIVERY.format(quote(record.delivery_id, safe="")), body)
            answer = outcome.body if isinstance(outcome.body, dict) else {}
            now = answer.get("state")
            if outcome.ok:
                record.posted = now if isinstance(now, str) else want
            elif outcome.status == 409 and now in ("cancelled", "expired"):
                record.closed = now
                log.info("delivery %s is %s on the server: it is not acted on", record.delivery_id, now)
            elif outcome.status == 409 and isinstance(now, str) and _rank(now) >= _rank(want):
                record.posted = now  # the server is past this state already (an earlier post got through)
            elif outcome.status in (400, 403, 404, 409, 422):
                # Not ours, gone, or a move the server will never take: retrying cannot help.
                record.closed = f"refused ({outcome.error})"
                log.warning("the server refused %r for delivery %s: %s", want, record.delivery_id, outcome.error)
            else:
                log.warning(
                    "cannot post %r for delivery %s (%s); kept to retry", want, record.delivery_id, outcome.error
                )
                return "failed"
            self.store.save(record)
            return "closed" if record.closed is not None else "ok"

    # --- after a restart ---

    def _restore(self) -> None:
        """What the records on disk say at start: messages listed again (and shown again, by
        _show_unseen, when they never were), a command that was running when the agent ended is
        failed (never run again), one that never started is taken up again."""
        for record in self.store.all():
            if record.type != "command" or record.closed is not None:
                continue
            if record.started and record.result is None:
                _end_leftover(record)
                record.result = {
                    "state": "failed",
                    "exit_code": None,
                    "output": "the agent restarted while the command ran",
                }
                record.want = "failed"
                self.store.save(record)
                log.warning("command delivery %s was running when the agent ended: reported failed", record.delivery_id)
            elif not record.started and record.result is None:
                self._queue_command(record)
        self._list_messages()

    def _show_unseen(self) -> None:
        """On the inbox's thread at start (it may wait for the tray): the messages not shown yet."""
        for message in self.service.messages:
            record = self.store.get(message.delivery_id)
            if not message.displayed and record is not None:
                self._show(record)


def _rank(state: str | None) -> int:
    """A state's place in its delivery's moves (the final command states share the last place)."""
    order = ("queued", "delivered", "displayed", "running", "acknowledged")
    if state in FINAL_COMMAND_STATES or state == "acknowledged":
        return len(order)
    return order.index(state) if state in order else -1


def _end_leftover(record: Delivery) -> None:
    """A script the agent started before it ended (a crash, a kill -9) must not run on unwatched:
    its process tree is killed, if that process is still the same one (pid and start time)."""
    if not record.process:
        return
    pid, created = int(record.process[0]), record.process[1]
    import psutil

    try:
        same = abs(psutil.Process(pid).create_time() - created) < 0.01
    except psutil.Error:
        return
    if same:
        from desktop_agent.allowlist import kill_tree

        log.warning("killing the script (pid %d) left running by the agent that ended", pid)
        kill_tree(pid)


def _notify(message: Message, on_acknowledge: Callable[[], None]) -> bool:
    """A desktop notification (desktop_agent/notify.py); False when none could be shown."""
    from desktop_agent import notify  # light; it loads desktop-notifier on its first send only

    return notify.send(
        message.title,
        message.body,
        severity=message.severity,  # type: ignore[arg-type]
        actions=[("Acknowledge", on_acknowledge)],
    )
