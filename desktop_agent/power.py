"""Sleep and shutdown, as Linux's logind announces them on the system D-Bus.

logind sends `PrepareForSleep(true)` just before the machine sleeps and `PrepareForSleep(false)`
after it resumes, and `PrepareForShutdown(true)` before a power-off or reboot. The agent says
goodbye on the first two "true"s (the server then shows the machine as away, not offline, and raises
no offline alert for it) and reports at once after a resume (hello: the machine is back).

While it listens it holds a logind "delay" inhibitor lock, as logind's documentation asks of a
program that has something to do before the machine sleeps: logind waits (up to its
InhibitDelayMaxSec, 5 s by default) until the lock is released, so the goodbye has time to leave.
The lock is released once the goodbye is sent and taken again after the resume. Without a lock
(logind refuses it, or is not there) the signals are still heard; the goodbye may then race the
sleep.

Nothing is imported or started where there is no system bus: jeepney is imported only when a
system bus socket exists (or DBUS_SYSTEM_BUS_ADDRESS names one), so the headless agent on other
machines pays nothing for this.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
DEFAULT_SYSTEM_BUS = "/run/dbus/system_bus_socket"


def system_bus_address() -> str | None:
    """The system bus's address, or None when this machine has none (no D-Bus, not Linux, a container)."""
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    if address:
        return address
    for path in (DEFAULT_SYSTEM_BUS, "/var/run/dbus/system_bus_socket"):
        if os.path.exists(path):
            return f"unix:path={path}"
    return None


class PowerWatcher:
    """Listens to logind on its own daemon thread; calls `going(reason)` ("sleep" or "shutdown")
    before the machine goes, and `back()` after it resumes."""

    def __init__(self, address: str, going: Callable[[str], object], back: Callable[[], object]) -> None:
        from jeepney import MatchRule, message_bus
        from jeepney.io.threading import open_dbus_connection

        self._going, self._back = going, back
        self._stopping = False
        self._lock_fd: Any = None
        self._conn = open_dbus_connection(address, enable_fds=True)
        try:
            for member in ("PrepareForSleep", "PrepareForShutdown"):
                rule = MatchRule(type="signal", sender=LOGIND, interface=MANAGER, path=LOGIND_PATH, member=member)
                self._call(message_bus.AddMatch(rule))
        except BaseException:
            self._conn.close()
            raise
        self._take_lock()
        self.thread = threading.Thread(target=self._run, name="power", daemon=True)

    def start(self) -> PowerWatcher:
        self.thread.start()
        return self

    def close(self) -> None:
        self._stopping = True
        self._release_lock()
        try:
            self._conn.close()
        except OSError:
            pass

    # --- logind's delay lock ---

    def _take_lock(self) -> None:
        from jeepney import DBusAddress, new_method_call

        manager = DBusAddress(LOGIND_PATH, bus_name=LOGIND, interface=MANAGER)
        what = "sleep:shutdown"
        why = "Tell the DashFleet server that this machine is going away"
        try:
            (fd,) = self._call(new_method_call(manager, "Inhibit", "ssss", (what, "DashFleet agent", why, "delay")))
        except Exception as exc:  # noqa: BLE001 - no logind, or not allowed: the signals still arrive
            log.info("no sleep delay lock from logind (%s): the goodbye may race the sleep", exc)
            return
        self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            fd.close()  # logind lets the machine go once every delay lock is closed

    # --- the bus ---

    def _call(self, message: Any) -> tuple[Any, ...]:
        from desktop_agent import dbus_calls

        return dbus_calls.call(self._conn, message, self._handle)

    def _run(self) -> None:
        from desktop_agent import dbus_calls

        try:
            dbus_calls.serve(self._conn, self._handle, lambda: self._stopping)
        except Exception:
            log.exception("the sleep and shutdown watcher stopped")

    def _handle(self, message: Any) -> None:
        from jeepney import HeaderFields, MessageType

        fields = message.header.fields
        if message.header.message_type != MessageType.signal or fields.get(HeaderFields.interface) != MANAGER:
            return
        member, body = fields.get(HeaderFields.member), message.body
        if not body or not isinstance(body[0], bool):
            return
        starting = body[0]
        if member not in ("PrepareForSleep", "PrepareForShutdown"):
            return
        if not starting:  # resumed (or a shutdown was called off): hello again
            log.info("the machine is back (%s ended)", member)
            self._take_lock()
            self._back()
        else:
            reason = "sleep" if member == "PrepareForSleep" else "shutdown"
            log.info("the machine is going to %s", reason)
            try:
                self._going(reason)
            finally:
                self._release_lock()


def watch(going: Callable[[str], object], back: Callable[[], object]) -> PowerWatcher | None:
    """Starts listening, where there is a system bus (Linux with D-Bus); None elsewhere."""
    address = system_bus_address()
    if address is None:
        return None
    try:
        return PowerWatcher(address, going, back).start()
    except Exception as exc:  # noqa: BLE001 - a bus that refuses us: the agent runs as before
        log.info("sleep and shutdown are not watched (system D-Bus: %s: %s)", type(exc).__name__, exc)
        return None
