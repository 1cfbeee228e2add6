"""The system-tray skin over AgentService: draws its state, forwards clicks. Nothing else.

pystray is imported only here and only when a tray is wanted: without a display its import
raises (Xlib's DisplayNameError), and any failure to start a tray means "run headless", said in
one log line, never a traceback.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from desktop_agent.icons import draw_icon, icon_key
from desktop_agent.service import AgentService, AgentState

log = logging.getLogger(__name__)
# Windows cuts tray tooltips at 127 characters.
MAX_TOOLTIP = 127


class TrayUnavailable(RuntimeError):
    """No tray can be shown here; the agent runs headless instead."""


class _OneLineErrors(logging.Filter):
    """pystray logs expected conditions (no tray host yet) with tracebacks; keep only the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def tooltip(state: AgentState) -> str:
    if state.sample is None:
        health = "DashFleet: starting"
    else:
        r = state.sample.report
        health = (
            f"DashFleet: {state.sample.health.status.upper()}, score {state.sample.health.score}/100\n"
            f"CPU {r['cpu_percent']:.0f}% RAM {r['ram_percent']:.0f}% Disk {r['disk_percent']:.0f}%"
        )
    if state.paused:
        server = "Paused"
    elif state.connected:
        server = "Server: connected"
    elif state.connected is None:
        server = "Server: not contacted yet"
    else:
        server = "Server: unreachable"
    if state.queued:
        server += f" ({state.queued} queued)"
    return f"{health}\n{server}"[:MAX_TOOLTIP]


def open_path(path: Path) -> None:
    """Opens a folder in the desktop's file manager."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if sys.platform == "win32":
            os.startfile(path)  # noqa: S606 - the user asked for it
        else:
            opener = "open" if sys.platform == "darwin" else "xdg-open"
            subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:
        log.warning("cannot open %s: %s", path, exc)


def _enable_xorg_clicks(icon) -> None:
    """pystray's xorg backend handles a left click (the default action) but never asks X for
    button events, so clicks are lost (pystray issue #151, 0.19.5). Ask for them on its window;
    called on the main thread before the icon's loop starts, so nothing else uses the connection."""
    try:
        from Xlib import X

        icon._window.change_attributes(event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
        icon._display.flush()
    except Exception as exc:  # noqa: BLE001 - private parts of pystray: without them, no clicks
        log.info("tray clicks are not available (%s: %s)", type(exc).__name__, exc)


def _close_xorg_icon(icon) -> bool:
    """Ends pystray's xorg loop by destroying its window over a connection of our own.

    pystray's icon.stop() asks its loop thread to do it through the loop's own X connection, used
    from two threads at once; that hung about one stop in two here (python-xlib waits for an
    answer that another thread has consumed). The X server tells the loop its window is gone,
    and the loop ends as it does after stop(). Returns False (caller uses stop()) if that fails.
    """
    try:
        from Xlib import display

        conn = display.Display(icon._display.get_display_name())
        try:
            conn.create_resource_object("window", icon._window.id).destroy()
            conn.sync()
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - private parts of pystray; stop() is the fallback
        log.info("closing the tray icon directly failed (%s: %s)", type(exc).__name__, exc)
        return False
    icon._running = False  # so that pystray does not destroy the window a second time at exit
    return True


def _skip_xlib_extensions() -> None:
    """python-xlib imports and sets up a module for every X extension the server offers (RANDR,
    XInput, RECORD, ... about 15) on each connection it opens, and pystray's xorg backend opens
    two. pystray, and this module, use the core protocol only: without them the tray costs
    0.8 MiB less RSS. Only this process's connections are affected (the agent makes no others)."""
    try:
        import Xlib.ext  # python-xlib: Linux only
    except ImportError:
        return
    Xlib.ext.__extensions__ = []  # the list Xlib.display.Display() walks at each connection


def _bind(action, delivery_id: str):
    return lambda: action(delivery_id)  # pystray calls an action with no arguments when it takes none


def message_items(service: AgentService, pystray) -> list:
    """The "Messages (n)" submenu: each message (newest first) with its first lines, Show (as a
    notification: `displayed`) and Acknowledge (`acknowledged`)."""
    marks = {"info": "", "warning": "[!] ", "critical": "[!!] "}
    items = []
    for m in service.messages:
        lines = [line[:80] for line in m.body.splitlines() if line.strip()][:5]
        entries = [pystray.MenuItem(line, None, enabled=False) for line in lines]
        entries.append(pystray.MenuItem("Show", _bind(service.show_message, m.delivery_id)))
        label = "Acknowledged" if m.acknowledged else "Acknowledge"
        entries.append(pystray.MenuItem(label, _bind(service.acknowledge, m.delivery_id), enabled=not m.acknowledged))
        items.append(pystray.MenuItem(marks.get(m.severity, "") + m.title[:60], pystray.Menu(*entries)))
    return items


class Tray:
    def __init__(self, service: AgentService, log_folder: Path):
        self.service = service
        self.log_folder = log_folder
        self._icon = None
        self._drawn: tuple[str, bool] | None = None
        self._messages_drawn: tuple = ()
        self._changed = threading.Event()
        self._xorg = False

    def _build(self):
        _skip_xlib_extensions()
        try:
            import pystray  # lazily: raises without a display
        except Exception as exc:  # noqa: BLE001 - any failure here means "no tray"
            raise TrayUnavailable(f"no system tray ({type(exc).__name__}: {exc})") from None
        logging.getLogger("pystray").addFilter(_OneLineErrors())
        service = self.service
        item = pystray.MenuItem
        menu = pystray.Menu(
            item("Open dashboard", self._open_dashboard, default=True),
            item("Send now", lambda: service.send_now()),
            item(lambda _: "Resume" if service.state.paused else "Pause", lambda: service.toggle_pause()),
            item("Open log folder", lambda: open_path(self.log_folder)),
            item(
                lambda _: f"Messages ({sum(not m.acknowledged for m in service.messages)})",
                pystray.Menu(lambda: message_items(service, pystray)),
                visible=lambda _: bool(service.messages),
            ),
            pystray.Menu.SEPARATOR,
            item("Quit", lambda: service.stop()),
        )
        state = service.state
        self._drawn = (icon_key(state), state.paused)
        try:
            icon = pystray.Icon(
                "dashfleet-agent", draw_icon(icon_key(state), paused=state.paused), tooltip(state), menu
            )
        except Exception as exc:  # noqa: BLE001 - e.g. the X server refused the connection
            raise TrayUnavailable(f"cannot create a tray icon ({type(exc).__name__}: {exc})") from None
        backend = type(icon).__module__.rsplit("_", 1)[-1]
        self._xorg = backend == "xorg"
        if self._xorg:
            _enable_xorg_clicks(icon)
        if not icon.HAS_MENU:
            log.warning(
                "the tray backend %r has no menu: the icon shows the state, a click opens the dashboard; "
                "quit with Ctrl+C or by ending the process",
                backend,
            )
        else:
            log.info("tray icon shown with the %r backend", backend)
        return icon

    def run(self) -> None:
        """Shows the icon and blocks until the service stops; raises TrayUnavailable."""
        self._icon = self._build()
        self.service.messages_ui_ready(bool(self._icon.HAS_MENU))
        self.service.subscribe(lambda _state: self._changed.set())
        # pystray wants the main thread (macOS insists); only its setup thread touches the icon,
        # and as rarely as it can. On xorg, each change made from outside pystray's loop uses
        # python-xlib from two threads at once, which can deadlock (seen here: about one stop in
        # three while the tooltip changed every second). So the icon changes only when its colour
        # does, on xorg the tooltip (a window name no tray host shows) only with it, and Quit
        # closes the icon over a connection of its own (_close_xorg_icon). __main__ also has a
        # watchdog that ends the process if the tray still fails to close.
        self._icon.run(setup=self._setup)

    def _setup(self, icon) -> None:
        icon.visible = True
        while not self.service.stopping:
            self._redraw(self.service.state)
            self._changed.wait(timeout=1.0)  # a state change, or a look at `stopping` each second
            self._changed.clear()
        if not (self._xorg and _close_xorg_icon(icon)):
            icon.stop()

    def _redraw(self, state: AgentState) -> None:
        icon = self._icon
        key = (icon_key(state), state.paused)
        title = tooltip(state)
        if state.messages != self._messages_drawn:  # "Messages (n)" follows the list
            self._messages_drawn = state.messages
            icon.update_menu()
        if key != self._drawn:
            icon.icon = draw_icon(key[0], paused=key[1])
            icon.title = title
            icon.update_menu()  # Pause/Resume follows `paused`
            self._drawn = key
        elif not self._xorg and title != icon.title:
            icon.title = title

    def _open_dashboard(self) -> None:
        url = self.service.config.server + "/"
        import webbrowser  # here: most agents never open it, and it costs RSS in every one

        # The browser may take a while to start; never block the tray's event loop on it.
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
