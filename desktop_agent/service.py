"""The agent's work: a report loop and a heartbeat loop on their own jittered timers.

The service owns the state (latest sample, whether the server answers, the queue, paused) and the
commands (send now, pause/resume, quit). The tray only draws that state and forwards clicks, and
headless mode is the same service without a tray.

Every report goes through the on-disk queue (put, then drain oldest first), so there is one path
for a report whether the server is up or not, and a crash at any point loses nothing.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from common.constants import PATH_GOODBYE
from desktop_agent import collectors
from desktop_agent.config import AgentConfig
from desktop_agent.credentials import MachineCredentials
from desktop_agent.deliveries import Message
from desktop_agent.queue import ReportQueue
from desktop_agent.reporter import Backoff, Outcome, Reporter
from desktop_agent.sampler import Sample, take_sample

if TYPE_CHECKING:
    from desktop_agent.inbox import Inbox

log = logging.getLogger(__name__)

# The server's clock is the reference for liveness; beyond this the user should fix the clock.
CLOCK_OFFSET_WARNING_SECONDS = 60.0
# A fleet that boots together spreads its first report and heartbeat over this many seconds.
START_SPREAD_SECONDS = 10.0
# Each period is stretched or shrunk by up to this share, so machines do not fall into step.
PERIOD_JITTER = 0.1
# psutil wants at least 0.1 s between two CPU readings; --once waits this long once after priming.
MIN_CPU_WINDOW_SECONDS = 0.5
# How long the drain waits at most between attempts while the server is down.
MAX_DRAIN_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class AgentState:
    sample: Sample | None = None
    connected: bool | None = None  # did the last exchange with the server succeed? None: not yet
    last_error: str | None = None
    status_line: str = ""
    queued: int = 0
    paused: bool = False
    clock_offset: float | None = None  # server time minus ours, from the last heartbeat
    messages: tuple[Message, ...] = ()  # from the server's admins, newest first (desktop_agent/inbox.py)
    last_report_at: datetime | None = None  # when the server last accepted a report (the tray shows it)


def status_line(when: datetime, outcome: str, sample: Sample) -> str:
    """The contract's line: `2026-01-02 15:30:45 OK HTTP 200 | CPU 45.2% ... | OS Windows`."""
    report = sample.report

    def pct(key: str) -> str:
        return "n/a" if key in sample.unavailable else f"{report[key]:.1f}%"

    os_name = report.get("system", {}).get("os") or "unknown"
    return (
        f"{when:%Y-%m-%d %H:%M:%S} {outcome} | CPU {pct('cpu_percent')} RAM {pct('ram_percent')} "
        f"Disk {pct('disk_percent')} | Score {'n/a' if sample.health.score is None else sample.health.score}/100 "
        f"| OS {os_name}"
    )


def _print_line(line: str) -> None:
    # A tray started without a console (pythonw, autostart) has no stdout; the log has the line.
    if sys.stdout is not None:
        try:
            print(line, flush=True)
        except (OSError, ValueError):
            pass


class AgentService:
    def __init__(
        self,
        config: AgentConfig,
        reporter: Reporter,
        queue: ReportQueue | None,
        *,
        state_dir: str | None = None,
        rng: random.Random | None = None,
        printer: Callable[[str], None] = _print_line,
        credentials: MachineCredentials | None = None,
    ):
        self.config = config
        self.credentials = credentials  # enrolment: this machine's own key (credentials.py)
        self.reporter = reporter
        self.queue = queue
        self.state_dir = state_dir
        self._rng = rng or random.Random()
        self._print = printer
        self._stop = threading.Event()
        self._wake_report = threading.Event()
        self._lock = threading.Lock()
        self._notify_lock = threading.RLock()  # a listener may itself update the state
        self._state = AgentState(queued=len(queue) if queue else 0)
        self._listeners: list[Callable[[AgentState], None]] = []
        self._threads: list[threading.Thread] = []
        cap = min(MAX_DRAIN_BACKOFF_SECONDS, 5 * config.interval)
        self._drain_backoff = Backoff(base=min(2.0, config.interval), cap=cap, rng=self._rng)
        self._drain_not_before = 0.0  # time.monotonic() before which the queue is not drained
        self._ping_not_before = 0.0
        self._cpu_primed_at = collectors.prime_cpu()  # for run_once, on this thread
        self._hardware_id = collectors.hardware_id(state_dir)
        # Messages and commands (desktop_agent/inbox.py), set up by __main__ for a running agent.
        self.inbox: Inbox | None = None
        self.reload_config: Callable[[], AgentConfig] | None = None  # refresh_config's re-read
        self.restart_requested = False
        self.message_ui = False  # the tray lists messages (a menu): set with ui_ready
        self.ui_ready = threading.Event()  # the tray is up, or known not to be

    # --- state, for the tray and the tests ---

    @property
    def state(self) -> AgentState:
        return self._state

    def subscribe(self, listener: Callable[[AgentState], None]) -> None:
        """Calls listener with the current state at once, then with each new one, in order: a
        listener that subscribes after the first reading (the tray starts while the loops run)
        still sees it."""
        with self._notify_lock:
            self._listeners.append(listener)
            self._call(listener, self._state)

    def _update(self, **changes: Any) -> None:
        with self._notify_lock:  # listeners see the states in the order they were made
            with self._lock:
                self._state = replace(self._state, **changes)
                state = self._state
            for listener in list(self._listeners):
                self._call(listener, state)

    @staticmethod
    def _call(listener: Callable[[AgentState], None], state: AgentState) -> None:
        try:
            listener(state)
        except Exception:
            log.exception("state listener failed")

    # --- commands ---

    def send_now(self) -> None:
        """Report at once, and try the queue even if it is waiting out a backoff."""
        self._drain_not_before = 0.0
        self._wake_report.set()

    def pause(self) -> None:
        log.info("paused: nothing is sent until resumed")
        self._update(paused=True)

    def resume(self) -> None:
        log.info("resumed")
        self._update(paused=False)
        self.send_now()

    def toggle_pause(self) -> None:
        self.resume() if self._state.paused else self.pause()

    def restart(self) -> None:
        """Stops, and __main__ starts the agent again (restart_agent)."""
        self.restart_requested = True
        self.stop()

    def say_goodbye(self, reason: str = "stop", back_in: float | None = None) -> bool:
        """A clean stop: the server shows this machine as away, not offline, and raises no offline
        alert for it until it is back (or overdue, when `back_in` seconds was promised). One try:
        a server that cannot be reached, or predates goodbyes, simply sees the machine go offline."""
        body: dict[str, object] = {"machine_id": self.config.machine_id, "reason": reason}
        if back_in is not None:
            body["back_in"] = back_in
        # The machine may sleep or power off within seconds (Windows gives two before a sleep):
        # no waiting between retries, which would hold that up for nothing.
        outcome = self.reporter.post(PATH_GOODBYE, body, attempts=1)
        if outcome.ok:
            log.info("said goodbye to the server (%s)", reason)
        else:
            log.info("could not say goodbye to the server: %s", outcome.error)
        return outcome.ok

    def stop(self) -> None:
        self._stop.set()
        self._wake_report.set()
        self._update()  # listeners (the tray) learn of it at once

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until stop() (True) or the timeout (False)."""
        return self._stop.wait(timeout)

    def sleep(self, seconds: float) -> bool:
        """An interruptible sleep for the reporter: True when the agent is quitting."""
        return self._stop.wait(seconds)

    # --- messages, for the tray (the inbox delivers them) ---

    @property
    def messages(self) -> tuple[Message, ...]:
        return self._state.messages

    def set_messages(self, messages: list[Message]) -> None:
        self._update(messages=tuple(messages))

    def messages_ui_ready(self, has_menu: bool) -> None:
        """The tray is up and lists messages (has_menu), or there is none: messages go to the log."""
        self.message_ui = has_menu
        self.ui_ready.set()

    def mark_displayed(self, delivery_id: str) -> None:
        """The person saw the message (the tray showed it)."""
        if self.inbox is not None:
            self.inbox.mark_displayed(delivery_id)

    def show_message(self, delivery_id: str) -> None:
        """Shows the message again as a notification; `displayed` once shown."""
        if self.inbox is not None:
            self.inbox.show_message(delivery_id)

    def acknowledge(self, delivery_id: str) -> None:
        """The person confirmed the message (a notification's button, the tray's menu)."""
        if self.inbox is not None:
            self.inbox.acknowledge(delivery_id)

    def say(self, line: str, level: int = logging.INFO) -> None:
        """A line for the log and the status output (stdout)."""
        log.log(level, "%s", line)
        self._print(line)

    # --- loops ---

    def start(self) -> None:
        for name, target in (("report", self._report_loop), ("heartbeat", self._heartbeat_loop)):
            thread = threading.Thread(target=target, name=f"dashfleet-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.inbox is not None:
            self.inbox.start()

    def join(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        if self.inbox is not None:
            self.inbox.close(min(5.0, timeout))
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _first_delay(self, period: float) -> float:
        return self._rng.uniform(0.0, min(period, START_SPREAD_SECONDS))

    def _period(self, period: float) -> float:
        return period * self._rng.uniform(1 - PERIOD_JITTER, 1 + PERIOD_JITTER)

    def _report_loop(self) -> None:
        # The first reading needs a CPU window primed on this thread; the start spread gives it one.
        collectors.prime_cpu()
        delay = max(MIN_CPU_WINDOW_SECONDS, self._first_delay(self.config.interval))
        while True:
            self._wake_report.wait(delay)
            self._wake_report.clear()
            if self._stop.is_set():
                return
            started = time.monotonic()
            self._guarded(self.report_cycle)
            delay = max(0.0, self._period(self.config.interval) - (time.monotonic() - started))

    def _heartbeat_loop(self) -> None:
        delay = self._first_delay(self.config.heartbeat_interval)
        while not self._stop.wait(delay):
            self._guarded(self.heartbeat)
            delay = self._period(self.config.heartbeat_interval)

    def _guarded(self, step: Callable[[], object]) -> None:
        # The loops must outlive any surprise (a full disk, an OS error): log it and go on.
        try:
            step()
        except Exception:
            log.exception("unexpected error in %s; the agent carries on", step.__name__)

    # --- one report ---

    def report_cycle(self) -> str:
        """Collects one sample, queues it, drains the queue; returns the status line."""
        sample = take_sample(self.state_dir)
        if self._state.paused:
            return self._finish(sample, "PAUSED (not sent)", connected=self._state.connected)
        assert self.queue is not None, "the report loop needs a queue"
        if len(self.queue) == 0 and time.monotonic() >= self._drain_not_before and self._has_key():
            outcome: Outcome | None = self._send_directly(sample.as_payload())
        else:  # others wait (or the server was down a moment ago): this one goes behind them
            self.queue.put(sample.as_payload())
            outcome = self.drain()
        queued = len(self.queue)
        if outcome is None:
            wait = max(0.0, self._drain_not_before - time.monotonic())
            text = f"QUEUED {queued} ({self._state.last_error or 'waiting'}; next try in {wait:.0f} s)"
            return self._finish(sample, text, connected=self._state.connected, queued=queued)
        if outcome.ok:
            return self._finish(
                sample,
                f"OK HTTP {outcome.status}",
                connected=True,
                queued=queued,
                last_error=None,
                last_report_at=datetime.now(),
            )
        if outcome.refused:
            # The server answered, so it is reachable; the bad report is gone (logged in drain).
            return self._finish(sample, f"REFUSED ({outcome.error}; dropped)", connected=True, queued=queued)
        return self._finish(
            sample, f"QUEUED {queued} ({outcome.error})", connected=False, queued=queued, last_error=outcome.error
        )

    def _finish(self, sample: Sample, outcome: str, **changes: Any) -> str:
        line = status_line(datetime.now(), outcome, sample)
        self._update(sample=sample, status_line=line, **changes)
        log.info("%s", line)
        self._print(line)
        return line

    def _send_directly(self, body: dict[str, Any]) -> Outcome:
        """The usual case, nothing queued and the server up: the report is sent at once and goes to
        the disk only when the send fails. Written, fsynced and deleted a moment later, it cost more
        CPU than the request itself (docs/benchmarks.md, "The agent's real cost"); a report is still
        never lost once it could not be sent."""
        assert self.queue is not None
        outcome = self.reporter.send_report(self.config.machine_id, body)
        self._note(outcome)  # the key's fate: what drain and the heartbeat tell the credentials too
        if outcome.ok:
            self._drain_backoff.reset()
        elif outcome.refused:
            log.error("the server refused a report for good (%s); dropped it", outcome.error)
        else:
            self.queue.put(body)
            delay = self._drain_backoff.next_delay(outcome.retry_after)
            self._drain_not_before = time.monotonic() + delay
            log.warning(
                "cannot send reports (%s); %d queued, next try in %.0f s", outcome.error, len(self.queue), delay
            )
        return outcome

    def drain(self) -> Outcome | None:
        """Sends queued reports oldest first until the queue is empty or the server fails.

        Returns the last outcome (ok when everything went), or None while backing off.
        """
        assert self.queue is not None
        if time.monotonic() < self._drain_not_before or not self._has_key():
            return None
        outcome: Outcome | None = None
        sent = 0
        batch_size = 100
        while not self._stop.is_set():
            batch = self.queue.peek(batch_size)
            for item in batch:
                outcome = self.reporter.send_report(self.config.machine_id, item.text)
                self._note(outcome)
                if outcome.ok or outcome.refused:
                    self.queue.ack(item.id)
                    if outcome.ok:
                        sent += 1
                    else:
                        log.error("the server refused a queued report for good (%s); dropped it", outcome.error)
                    continue
                delay = self._drain_backoff.next_delay(outcome.retry_after)
                self._drain_not_before = time.monotonic() + delay
                log.warning(
                    "cannot send reports (%s); %d queued, next try in %.0f s", outcome.error, len(self.queue), delay
                )
                return outcome
            if len(batch) < batch_size:
                break  # that was the last of them
        self._drain_backoff.reset()
        if sent > 1:
            log.info("sent %d queued reports", sent)
        return outcome

    # --- this machine's key ---

    def _has_key(self) -> bool:
        """With enrolment: whether a key is there to send with (enrolling when due). Without it
        (an organisation key), always."""
        if self.credentials is None or self.credentials.ensure():
            return True
        self._update(last_error=self.credentials.last_error)
        return False

    def _note(self, outcome: Outcome) -> None:
        if self.credentials is not None:
            self.credentials.note(outcome)

    # --- one heartbeat ---

    def heartbeat(self) -> Outcome | None:
        if self._state.paused or time.monotonic() < self._ping_not_before or not self._has_key():
            return None
        outcome = self.reporter.ping(self.config.machine_id, self._hardware_id)
        self._note(outcome)
        if outcome.ok:
            offset = self.check_clock(outcome.body)
            if self.inbox is not None and isinstance(outcome.body, dict) and outcome.body.get("inbox") is True:
                self.inbox.wake()  # something waits for this machine: poll now, whatever a proxy cut
            if self._state.connected is False:
                log.info("the server answers again; sending the queue at the next report")
                self._drain_not_before = 0.0
            self._update(connected=True, last_error=None, clock_offset=offset)
        else:
            if outcome.retry_after:
                self._ping_not_before = time.monotonic() + outcome.retry_after
            log.warning("heartbeat failed: %s", outcome.error)
            self._update(connected=False, last_error=outcome.error)
        return outcome

    def check_clock(self, body: object) -> float | None:
        offset = body.get("server_time_offset") if isinstance(body, dict) else None
        if not isinstance(offset, (int, float)) or isinstance(offset, bool):
            return None
        previous = self._state.clock_offset
        skewed = abs(offset) > CLOCK_OFFSET_WARNING_SECONDS
        # Warn when the skew appears or moves by another minute, not on every heartbeat.
        if skewed and (
            previous is None
            or abs(offset - previous) > CLOCK_OFFSET_WARNING_SECONDS
            or abs(previous) <= CLOCK_OFFSET_WARNING_SECONDS
        ):
            direction = "behind" if offset > 0 else "ahead of"
            log.warning(
                "this machine's clock is %.0f s %s the server's: fix the clock (NTP); the fleet uses the server's time",
                abs(offset),
                direction,
            )
        return float(offset)

    # --- --once ---

    def run_once(self) -> tuple[bool, str, str | None]:
        """One report and one heartbeat, straight to the server (the queue is not used).

        Returns (both accepted, status line, one-line error or None).
        """
        remaining = MIN_CPU_WINDOW_SECONDS - (time.monotonic() - self._cpu_primed_at)
        if remaining > 0:
            time.sleep(remaining)
        sample = take_sample(self.state_dir)
        if not self._has_key():
            error = self.credentials.last_error if self.credentials else "no key"
            line = status_line(datetime.now(), f"FAILED ({error})", sample)
            log.info("%s", line)
            self._print(line)
            return False, line, error
        report = self.reporter.send_report(self.config.machine_id, sample.as_payload())
        if report.ok:
            ping = self.reporter.ping(self.config.machine_id, self._hardware_id)
            error = None if ping.ok else f"heartbeat: {ping.error}"
            if ping.ok:
                self.check_clock(ping.body)
            line = status_line(datetime.now(), f"OK HTTP {report.status}", sample)
        else:
            error = f"report: {report.error}"
            line = status_line(datetime.now(), f"FAILED ({report.error})", sample)
        log.info("%s", line)
        self._print(line)
        return error is None, line, error
