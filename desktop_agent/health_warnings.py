"""Local warnings: tell the person at the machine when its health turns warning or critical.

One desktop notification per transition upwards (ok -> warning, ok or warning -> critical), with
the reasons and what the person can do (desktop_agent.tray_text.warning_text). Not again while the
health stays there, nor when it comes back down to warning from critical. Repeats are
rate-limited: a health that flaps around a threshold warns at most once per level every
REPEAT_AFTER_SECONDS. While the desktop's do-not-disturb is on, a warning waits (it is checked
again at each new reading) and is shown when it ends if the health is still bad; a critical one
is shown anyway (the notification server decides how). Without a notification service, the
warning goes to the log. IT turns all this off with `local_warnings = false` in the config.

Runs in tray mode only (desktop_agent.tray starts it): a headless agent has nobody to tell.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from desktop_agent import notify
from desktop_agent.i18n import Texts
from desktop_agent.sampler import Sample
from desktop_agent.service import AgentState
from desktop_agent.tray_text import warning_text

log = logging.getLogger(__name__)

REPEAT_AFTER_SECONDS = 30 * 60.0
LEVELS = {"ok": 0, "warning": 1, "critical": 2}


class HealthWarnings:
    """Subscribe observe() to the service; it returns at once and notifies on a thread of its own."""

    def __init__(
        self,
        texts: Texts,
        *,
        send: Callable[..., bool] = notify.send,
        do_not_disturb: Callable[[], bool | None] = notify.do_not_disturb,
        clock: Callable[[], float] = time.monotonic,
        repeat_after: float = REPEAT_AFTER_SECONDS,
    ) -> None:
        self.texts = texts
        self._send, self._dnd, self._clock, self._repeat_after = send, do_not_disturb, clock, repeat_after
        self._lock = threading.Lock()
        self._seen: Sample | None = None
        self._level = 0
        self._pending: Sample | None = None  # a warning not shown yet (do-not-disturb)
        self._last_shown: dict[str, float] = {}
        self._busy = False

    def observe(self, state: AgentState) -> None:
        sample = state.sample
        with self._lock:
            if sample is None or sample is self._seen:
                return  # a heartbeat or a pause: no new reading
            self._seen = sample
            level = LEVELS[sample.health.status or "ok"]  # None (nothing readable): nothing to warn of
            if level > self._level:
                self._pending = sample
            elif level == 0:
                self._pending = None
            elif self._pending is not None:
                self._pending = sample  # still waiting: show the newest reasons
            self._level = level
            if self._pending is None or self._busy:
                return
            self._busy = True
        threading.Thread(target=self._deliver, name="dashfleet-warning", daemon=True).start()

    def _deliver(self) -> None:
        """Shows what is pending, then whatever became pending meanwhile (a rise to critical while
        the warning was being shown); stops when nothing is, or when do-not-disturb holds it."""
        try:
            while True:
                with self._lock:
                    sample = self._pending
                    if sample is None:
                        return
                if not self._show(sample):
                    return
        except Exception:
            log.exception("the local health warning failed")
        finally:
            with self._lock:
                self._busy = False

    def _show(self, sample: Sample) -> bool:
        """Shows one warning (or decides not to); False when it must wait (do-not-disturb)."""
        status = sample.health.status or "ok"  # only warning and critical are ever shown
        now = self._clock()
        last = self._last_shown.get(status)
        if last is not None and now - last < self._repeat_after:
            log.info("health %s again within %.0f min: not notified again", status, self._repeat_after / 60)
        elif status != "critical" and self._dnd():
            log.info("health %s, but do-not-disturb is on: the warning waits until it ends", status)
            return False  # stays pending; the next reading tries again
        else:
            title, body = warning_text(sample, self.texts)
            if not self._send(title, body, severity=status):
                log.warning("%s: %s", title, body.replace("\n", "; "))
            self._last_shown[status] = now
        with self._lock:
            if self._pending is not None and self._pending.health.status == status:
                self._pending = None  # shown (or a newer reading of the same level, which it covered)
        return True
