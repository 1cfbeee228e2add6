"""Sleep, log-off and shutdown on Windows, as Windows tells the tray icon's window.

Windows sends every top-level window `WM_POWERBROADCAST` with `PBT_APMSUSPEND` just before the
machine sleeps (a program has about two seconds) and `PBT_APMRESUMEAUTOMATIC` after every resume;
before a session ends it sends `WM_QUERYENDSESSION`, then `WM_ENDSESSION` (wParam TRUE: it does
end; lParam has `ENDSESSION_LOGOFF` for a log-off, else it is a shutdown or restart), after which
the process may be ended at any moment. The agent says goodbye on the way down, at once (inside
the message), and reports after a resume (hello), as it does on Linux from logind (power.py).

pystray's Windows icon owns such a window (a hidden pop-up: broadcasts reach no message-only
window) and its message loop; its `_message_handlers` maps a message to `handler(wParam, lParam)`,
whose result is the window's answer. pystray answers every other message 0, which for
`WM_QUERYENDSESSION` means "do not end the session" and makes Windows list the agent among the
programs holding up a log-off; the handler here answers TRUE.

Not run on Windows: there is none here. It is written to Microsoft's documentation of these
messages; the decisions below are tested on Linux (tests/desktop_agent/test_win_session.py). The
headless agent has no window, so it hears none of this (docs/agent.md, "Goodbye").
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

WM_QUERYENDSESSION = 0x0011
WM_ENDSESSION = 0x0016
WM_POWERBROADCAST = 0x0218
PBT_APMSUSPEND = 0x0004
# Sent after every resume, whether or not someone is at the machine (PBT_APMRESUMESUSPEND, which
# may follow it, is only for a resume by a person): one hello per resume.
PBT_APMRESUMEAUTOMATIC = 0x0012
ENDSESSION_LOGOFF = 0x80000000
TRUE = 1


class SessionMessages:
    """The handlers of the three messages; `going(reason)` ("sleep", "logoff", "shutdown") before
    the machine or session goes, `back()` after a resume."""

    def __init__(self, going: Callable[[str], object], back: Callable[[], object]) -> None:
        self._going, self._back = going, back

    def handlers(self) -> dict[int, Callable[[int, int], int]]:
        return {
            WM_QUERYENDSESSION: self.query_end_session,
            WM_ENDSESSION: self.end_session,
            WM_POWERBROADCAST: self.power_broadcast,
        }

    def query_end_session(self, wparam: int, lparam: int) -> int:
        return TRUE  # the agent keeps nothing unsaved: never hold up a log-off or shutdown

    def end_session(self, wparam: int, lparam: int) -> int:
        if wparam:  # FALSE: another program cancelled the log-off or shutdown
            reason = "logoff" if lparam & ENDSESSION_LOGOFF else "shutdown"
            log.info("the session is ending (%s)", reason)
            self._going(reason)
        return 0

    def power_broadcast(self, wparam: int, lparam: int) -> int:
        if wparam == PBT_APMSUSPEND:
            log.info("the machine is going to sleep")
            self._going("sleep")
        elif wparam == PBT_APMRESUMEAUTOMATIC:
            log.info("the machine is back (resumed)")
            self._back()
        return TRUE


def attach(icon: object, going: Callable[[str], object], back: Callable[[], object]) -> bool:
    """Hands the messages to pystray's Windows icon; False when it has no such table (another
    backend, or a pystray that changed it: the agent then runs as before)."""
    handlers = getattr(icon, "_message_handlers", None)
    if not isinstance(handlers, dict):
        log.info("sleep, log-off and shutdown are not watched (this tray icon has no message table)")
        return False
    handlers.update(SessionMessages(going, back).handlers())
    return True
