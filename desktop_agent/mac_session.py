"""Sleep on macOS, as NSWorkspace tells the tray agent.

macOS posts `NSWorkspaceWillSleepNotification` on NSWorkspace's notification center before the
machine sleeps (an observer may hold the sleep up to 30 seconds while it handles it) and
`NSWorkspaceDidWakeNotification` after it wakes. They are delivered on the main thread's run
loop, which is the one pystray's macOS icon runs (NSApplication). The agent says goodbye before
the sleep and reports after the wake (hello), as it does on Linux from logind (power.py). Log-off
and shutdown need nothing here: launchd sends the agent SIGTERM, which says goodbye.

PyObjC is there wherever pystray runs on macOS (pystray requires pyobjc-framework-Quartz, which
brings AppKit and Foundation). The observer is an NSObject subclass made on first use; what each
notification does is `SleepNotes`, tested on Linux (tests/desktop_agent/test_mac_session.py).
Nothing of this has run on a Mac: there is none here. The headless agent has no run loop and
hears neither notification (docs/agent.md, "Goodbye").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# The notifications, and the observer's selector for each.
SELECTORS = {
    "NSWorkspaceWillSleepNotification": "willSleep:",
    "NSWorkspaceDidWakeNotification": "didWake:",
}
_observer_class: Any = None


class SleepNotes:
    """What each notification does: `going("sleep")` before, `back()` after."""

    def __init__(self, going: Callable[[str], object], back: Callable[[], object]) -> None:
        self._going, self._back = going, back

    def will_sleep(self) -> None:
        log.info("the machine is going to sleep")
        self._call(self._going, "sleep")

    def did_wake(self) -> None:
        log.info("the machine is back (woke)")
        self._call(self._back)

    @staticmethod
    def _call(action: Callable[..., object], *args: str) -> None:
        # An exception must not leave the observer: it would cross into Objective-C.
        try:
            action(*args)
        except Exception:
            log.exception("handling a sleep notification failed")


def _observer() -> Any:
    """The NSObject subclass observing NSWorkspace (an Objective-C class is made once per process)."""
    global _observer_class
    if _observer_class is None:
        from Foundation import NSObject

        class DashFleetSleepObserver(NSObject):  # type: ignore[misc]
            notes: SleepNotes

            def willSleep_(self, notification: Any) -> None:  # noqa: N802 - an Objective-C selector
                self.notes.will_sleep()

            def didWake_(self, notification: Any) -> None:  # noqa: N802 - an Objective-C selector
                self.notes.did_wake()

        _observer_class = DashFleetSleepObserver
    return _observer_class


def attach(going: Callable[[str], object], back: Callable[[], object]) -> Any:
    """Observes sleep and wake; returns the observer, which the caller keeps (the notification
    center does not), or None when it cannot (no PyObjC: the agent runs as before)."""
    try:
        import AppKit

        observer = _observer().alloc().init()
        observer.notes = SleepNotes(going, back)
        center = AppKit.NSWorkspace.sharedWorkspace().notificationCenter()
        for name, selector in SELECTORS.items():
            center.addObserver_selector_name_object_(observer, selector, getattr(AppKit, name), None)
    except Exception as exc:  # noqa: BLE001 - no PyObjC, or an AppKit that refuses: run as before
        log.info("sleep is not watched (%s: %s)", type(exc).__name__, exc)
        return None
    return observer
