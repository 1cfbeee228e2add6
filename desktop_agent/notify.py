"""Desktop notifications: the agent's one way to put a message in front of the person at the machine.

    from desktop_agent import notify
    shown = notify.send("Disk almost full", "Disk /: 95% full. Empty the bin.", severity="warning",
                        actions=[("Open log folder", open_logs)])
    if not shown:
        log.warning(...)  # no notification service here (or do-not-disturb): the log is the fallback

desktop-notifier (PyPI) does the platform's work: org.freedesktop.Notifications over D-Bus on Linux
(dbus-fast, asyncio), toasts on Windows, the notification centre on macOS. It costs several MiB
(dbus-fast, its asyncio loop), so it is imported on the first send only: a headless agent that never
notifies never loads it. Its asyncio loop runs on a daemon thread of its own, started with it, so
that button callbacks arrive while the caller's thread (the tray, a report loop) does other work.

Do-not-disturb: where the notification service says it is on (KDE's and the notification spec's
`Inhibited` property, dunst's `paused`, GNOME's `show-banners` setting), "info" and "warning"
notifications are not sent (send() returns False and callers log instead, or try again later);
"critical" ones are, and the service decides how to show them (GNOME and KDE still show critical
ones in do-not-disturb; dunst holds them until it is resumed). Windows and macOS apply their own
focus/do-not-disturb modes to every notification, so nothing is checked there.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]
Action = tuple[str, Callable[[], object]]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
APP_NAME = "DashFleet"
# How long send() waits for the notification service to take a notification; the caller is often
# the tray's thread, which must not hang on a stuck bus.
SEND_TIMEOUT_SECONDS = 10.0
# freedesktop icon names, shown by Linux notification services beside the text.
_ICON_NAMES = {"info": "dialog-information", "warning": "dialog-warning", "critical": "dialog-error"}
_BUS_NAME = "org.freedesktop.Notifications"
_BUS_PATH = "/org/freedesktop/Notifications"


class _OneLine(logging.Filter):
    """desktop-notifier logs a failed send with a traceback (no bus, no service): keep one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def session_bus_available() -> bool:
    """Linux: is there a session D-Bus to talk to? (Checked before importing anything heavy.)"""
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if address:
        return True
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return runtime is not None and runtime != "" and Path(runtime, "bus").exists()


class Notifier:
    """One desktop-notifier client and the event loop it runs on. Use the module's send()."""

    def __init__(self) -> None:
        import asyncio

        from desktop_notifier import DesktopNotifier
        from desktop_notifier.backends.dummy import DummyNotificationCenter
        from desktop_notifier.main import get_backend_class

        logging.getLogger("desktop_notifier").addFilter(_OneLine())
        self._notifier = DesktopNotifier(app_name=APP_NAME, app_icon=None)
        # desktop-notifier falls back to a backend that drops everything (an old macOS, a Python
        # that is not an app bundle there): that is "no notification service".
        self.usable = not issubclass(get_backend_class(), DummyNotificationCenter)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dashfleet-notify", daemon=True)
        self._thread.start()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        import asyncio

        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=SEND_TIMEOUT_SECONDS)

    def send(self, title: str, body: str, severity: Severity, actions: Sequence[Action]) -> bool:
        from desktop_notifier import Button, Icon, Urgency

        urgency = {"info": Urgency.Normal, "warning": Urgency.Normal, "critical": Urgency.Critical}[severity]
        dispatched = threading.Event()
        buttons = [Button(title=label, on_pressed=_guarded(label, callback)) for label, callback in actions]
        icon = Icon(name=_ICON_NAMES[severity]) if sys.platform.startswith("linux") else None
        try:
            self._run(
                self._notifier.send(
                    title, body, urgency=urgency, icon=icon, buttons=buttons, on_dispatched=dispatched.set
                )
            )
        except Exception as exc:  # noqa: BLE001 - a stuck bus (timeout) or anything else: not shown
            log.info("the notification could not be sent (%s: %s)", type(exc).__name__, exc)
            return False
        # desktop-notifier never raises on a failed send (it logs); it calls on_dispatched on success.
        return self.usable and dispatched.wait(1.0)

    def do_not_disturb(self) -> bool | None:
        """True/False where the platform says, None where it does not (or the question failed)."""
        if not sys.platform.startswith("linux"):
            return None  # Windows and macOS apply their own modes to every notification
        answer: bool | None
        try:
            answer = self._run(_linux_dnd())
        except Exception as exc:  # noqa: BLE001 - a question we may fail to ask: "unknown"
            log.debug("cannot read the do-not-disturb state: %s", exc)
            answer = None
        if answer is None:
            answer = _gnome_dnd()
        return answer


async def _linux_dnd() -> bool | None:
    """The notification service's own do-not-disturb flag, over D-Bus, where it has one."""
    from dbus_fast import Message, MessageType
    from dbus_fast.aio import MessageBus

    bus = await MessageBus().connect()
    try:
        # `Inhibited`: KDE Plasma and the notification spec's draft; `paused`: dunst.
        for interface, prop in ((_BUS_NAME, "Inhibited"), ("org.dunstproject.cmd0", "paused")):
            reply = await bus.call(
                Message(
                    destination=_BUS_NAME,
                    path=_BUS_PATH,
                    interface="org.freedesktop.DBus.Properties",
                    member="Get",
                    signature="ss",
                    body=[interface, prop],
                )
            )
            if reply is not None and reply.message_type == MessageType.METHOD_RETURN:
                value = reply.body[0].value
                if isinstance(value, bool):
                    return value
        return None
    finally:
        bus.disconnect()


def _gnome_dnd() -> bool | None:
    """GNOME keeps do-not-disturb as a setting (banners off), not on the notification service."""
    if "GNOME" not in os.environ.get("XDG_CURRENT_DESKTOP", "").upper() or not shutil.which("gsettings"):
        return None
    try:
        done = subprocess.run(
            ["gsettings", "get", "org.gnome.desktop.notifications", "show-banners"],
            capture_output=True,
            text=True,
            timeout=2,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = done.stdout.strip()
    return {"false": True, "true": False}.get(value) if done.returncode == 0 else None


def _guarded(label: str, callback: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            callback()
        except Exception:
            log.exception("the notification button %r failed", label)

    return run


_notifier: Notifier | None = None
_unavailable: str | None = None  # why notifications cannot be shown, once known
_lock = threading.Lock()


def _get() -> Notifier | None:
    global _notifier, _unavailable
    with _lock:
        if _notifier is None and _unavailable is None:
            if sys.platform.startswith("linux") and not session_bus_available():
                _unavailable = "no session D-Bus"
            else:
                try:
                    _notifier = Notifier()
                except Exception as exc:  # noqa: BLE001 - not installed, or broken: the log is the fallback
                    _unavailable = f"{type(exc).__name__}: {exc}"
                else:
                    if not _notifier.usable:
                        _unavailable = "no notification service on this platform"
            if _unavailable:
                log.info("desktop notifications are not available (%s); messages go to the log", _unavailable)
        return _notifier if _unavailable is None else None


def do_not_disturb() -> bool | None:
    """Whether the desktop's do-not-disturb mode is on: True/False, or None where it is not exposed."""
    notifier = _get()
    return notifier.do_not_disturb() if notifier else None


def send(
    title: str,
    body: str,
    *,
    severity: Severity = "info",
    actions: Sequence[Action] = (),
) -> bool:
    """Shows a desktop notification; True when the notification service took it.

    False when there is no notification service (no desktop session, no D-Bus, no daemon), when
    do-not-disturb is on and the severity is not "critical", or when the service did not answer
    within a few seconds: the caller then logs the message instead. Action callbacks run on the
    notifier's own thread when the person presses their button (where the service shows buttons).
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    notifier = _get()
    if notifier is None:
        return False
    if severity != "critical" and notifier.do_not_disturb():
        log.info("do-not-disturb is on: notification %r not shown", title)
        return False
    return notifier.send(title, body, severity, actions)


def loaded() -> bool:
    """Whether desktop-notifier has been loaded in this process (for the memory tests)."""
    return _notifier is not None


__all__ = ["SEVERITIES", "Action", "Severity", "do_not_disturb", "loaded", "send", "session_bus_available"]
