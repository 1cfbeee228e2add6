"""The system-tray skin over AgentService: draws its state, lists its health, forwards clicks.

What it shows comes from desktop_agent.tray_text (the words, in the person's language) and
desktop_agent.icons (the badges); the menu is one list of entries (entries()) that every backend
renders. On Linux the tray is a StatusNotifierItem with a dbusmenu menu (desktop_agent.sni, over
jeepney) when the session bus has a StatusNotifierWatcher (KDE, GNOME with the AppIndicator
extension, Xfce, Cinnamon, ...); otherwise, and on Windows and macOS, pystray. pystray is imported
only here and only when a tray is wanted: without a display its import raises (Xlib's
DisplayNameError), and any failure to start a tray means "run headless", said in one log line,
never a traceback.

The default action (a left click) shows the health summary as a notification (desktop_agent.notify);
"Open dashboard" is there only when the config names a dashboard for end users (`dashboard_url`).
Tray mode also starts the local health warnings (desktop_agent.health_warnings).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from desktop_agent import notify
from desktop_agent.i18n import Texts
from desktop_agent.icons import draw_icon, icon_key
from desktop_agent.service import AgentService, AgentState
from desktop_agent.tray_menu import Entry, shape
from desktop_agent.tray_text import health_lines, summary, tooltip
from desktop_agent.xorg_icon import IconLoop, skip_xlib_extensions

log = logging.getLogger(__name__)
# Sizes given to StatusNotifierItem hosts, which pick the nearest to their panel's.
SNI_SIZES = (16, 22, 24, 32, 48, 64)
# dbusmenu ids: the commands at fixed ids, the health lines from LINE_IDS on, the messages from
# MESSAGE_IDS on (MESSAGE_ID_STEP ids for each: its submenu, its lines, Show, Acknowledge).
LINE_IDS = 100
MESSAGE_IDS = 1000
MESSAGE_ID_STEP = 10
MESSAGE_LINES = 5
SEVERITY_MARKS = {"info": "", "warning": "[!] ", "critical": "[!!] "}
# xorg: how often the icon checks that the tray host shows it (a request to dock can be lost, and a
# tray host that starts after the agent is never told about the icon).
DOCK_CHECK_SECONDS = 5.0


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


@lru_cache(maxsize=64)
def _pixmap(key: str, size: int) -> tuple[int, int, bytes]:
    """A badge as StatusNotifierItem wants it: ARGB32, network byte order."""
    from PIL import Image

    red, green, blue, alpha = draw_icon(key, size=size).split()
    return size, size, Image.merge("RGBA", (alpha, red, green, blue)).tobytes()


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


class Tray:
    def __init__(
        self,
        service: AgentService,
        log_folder: Path,
        power: tuple[Callable[[str], object], Callable[[], object]] | None = None,
    ):
        self.service = service
        self.log_folder = log_folder
        self._power = power  # (going, back): what the OS's word of sleep, log-off, shutdown does
        self._sleep_observer: object = None  # macOS: the NSWorkspace observer
        language = service.config.language
        self.texts = Texts(None if language == "auto" else language)
        self._icon = None
        self._drawn: str | None = None
        self._menu_shown: list[tuple[int, str, bool, int]] = []
        self._changed = threading.Event()
        self._xorg: IconLoop | None = None  # pystray's X11 icon: changes run on its loop thread

    # --- what every backend shows ---

    def entries(self) -> list[Entry]:
        """The menu, top to bottom: the health lines (a click on one shows the summary), then the
        commands. Ids are stable per command, so a host's open menu keeps its place."""
        t, state = self.texts, self.service.state
        lines = health_lines(state, t)
        entries = [Entry(LINE_IDS + i, line, self.show_summary) for i, line in enumerate(lines)]
        entries.append(Entry(1))
        if state.messages:
            entries.append(self._messages_entry(state))
        entries.append(Entry(2, t("menu.summary"), self.show_summary))
        if self.service.config.dashboard_url:
            entries.append(Entry(3, t("menu.open_dashboard"), self._open_dashboard))
        entries.append(Entry(4, t("menu.send_now"), self.service.send_now))
        entries.append(Entry(5, t("menu.resume" if state.paused else "menu.pause"), self.service.toggle_pause))
        entries.append(Entry(6, t("menu.open_logs"), lambda: open_path(self.log_folder)))
        entries.append(Entry(7))
        entries.append(Entry(8, t("menu.quit"), self.service.stop))
        return entries

    def _messages_entry(self, state: AgentState) -> Entry:
        """ "Messages (n)": each message from IT (newest first, n unacknowledged) as a submenu of
        its first lines, Show (again, as a notification) and Acknowledge."""
        t, service = self.texts, self.service
        submenus = []
        for i, m in enumerate(state.messages):
            base = MESSAGE_IDS + i * MESSAGE_ID_STEP
            lines = [line[:80] for line in m.body.splitlines() if line.strip()][:MESSAGE_LINES]
            children = [Entry(base + 1 + k, line, enabled=False) for k, line in enumerate(lines)]
            children.append(Entry(base + 7, t("menu.message_show"), _with(service.show_message, m.delivery_id)))
            label = t("menu.message_acknowledged" if m.acknowledged else "menu.message_acknowledge")
            ack = _with(service.acknowledge, m.delivery_id)
            children.append(Entry(base + 8, label, ack, enabled=not m.acknowledged))
            title = SEVERITY_MARKS.get(m.severity, "") + m.title[:60]
            submenus.append(Entry(base, title, children=tuple(children)))
        unread = sum(not m.acknowledged for m in state.messages)
        return Entry(9, t("menu.messages", count=unread), children=tuple(submenus))

    def tooltip(self) -> str:
        state = self.service.state
        return tooltip(state, icon_key(state), self.texts)

    def show_summary(self) -> None:
        """The default action: the health summary as a notification (the log without a service)."""
        title, body = summary(self.service.state, self.texts)
        if not notify.send(title, body):
            log.info("%s: %s", title, body.replace("\n", "; "))

    def _open_dashboard(self) -> None:
        url = self.service.config.dashboard_url
        if not url:
            return
        import webbrowser  # here: most agents never open it, and it costs RSS in every one

        # The browser may take a while to start; never block the tray's event loop on it.
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    # --- running ---

    def run(self) -> None:
        """Shows the icon and blocks until the service stops; raises TrayUnavailable."""
        if self.service.config.local_warnings:
            from desktop_agent.health_warnings import HealthWarnings

            self.service.subscribe(HealthWarnings(self.texts).observe)
        self.service.subscribe(lambda _state: self._changed.set())
        # A StatusNotifierItem needs a session bus; without one, jeepney is not even imported.
        if sys.platform.startswith("linux") and notify.session_bus_available():
            from desktop_agent.sni import SniUnavailable  # jeepney: Linux only, tray mode only

            try:
                self._run_sni()  # lists messages (a menu): _run_sni says so once it is up
                return
            except SniUnavailable as exc:
                log.info("%s; trying an X11 tray icon", exc)
        elif sys.platform.startswith("linux"):
            log.info("no session D-Bus, so no StatusNotifierItem; trying an X11 tray icon")
        self._run_pystray()

    def _run_sni(self) -> None:
        from desktop_agent.sni import StatusNotifierItem

        item = StatusNotifierItem(
            item_id="dashfleet-agent",
            title="DashFleet",
            pixmaps=lambda: [_pixmap(icon_key(self.service.state), size) for size in SNI_SIZES],
            tooltip=lambda: ("DashFleet", self.tooltip()),
            entries=self.entries,
            activate=self.show_summary,
        )
        log.info("tray icon shown as a StatusNotifierItem (%s), with its menu", item.bus_name)
        self.service.messages_ui_ready(True)

        def follow() -> None:  # redraws on each change, off the bus thread (a badge takes ms)
            while not self.service.stopping:
                self._changed.wait(timeout=1.0)
                self._changed.clear()
                item.refresh()
            # The bus thread closes the connection itself (within a second of Quit), after it has
            # answered the click that asked for it.

        threading.Thread(target=follow, name="dashfleet-tray", daemon=True).start()
        item.run(lambda: self.service.stopping)

    def _build(self):
        skip_xlib_extensions()
        try:
            import pystray  # lazily: raises without a display
        except Exception as exc:  # noqa: BLE001 - any failure here means "no tray"
            raise TrayUnavailable(f"no system tray ({type(exc).__name__}: {exc})") from None
        # Where pystray's icons log (a filter on the parent "pystray" logger would not see it).
        logging.getLogger("pystray._base").addFilter(_OneLineErrors())

        def items(entries):
            for entry in entries:
                if entry.separator:
                    yield pystray.Menu.SEPARATOR
                elif entry.children:
                    yield pystray.MenuItem(entry.label, pystray.Menu(*items(entry.children)))
                else:
                    action = _ignore_args(entry.action) if entry.action else None
                    yield pystray.MenuItem(entry.label, action, enabled=entry.enabled, default=entry.id == 2)

        state = self.service.state
        self._drawn = icon_key(state)
        self._menu_shown = shape(self.entries())
        menu = pystray.Menu(lambda: items(self.entries()))
        try:
            icon = pystray.Icon("dashfleet-agent", draw_icon(self._drawn), self.tooltip(), menu)
        except Exception as exc:  # noqa: BLE001 - e.g. the X server refused the connection
            raise TrayUnavailable(f"cannot create a tray icon ({type(exc).__name__}: {exc})") from None
        backend = type(icon).__module__.rsplit("_", 1)[-1]
        if backend == "xorg":
            try:
                self._xorg = IconLoop(icon, self._on_xorg_loop)
            except Exception as exc:  # noqa: BLE001 - the display refused a second connection
                raise TrayUnavailable(f"cannot drive the X11 tray icon ({type(exc).__name__}: {exc})") from None
        elif backend == "win32" and self._power:
            from desktop_agent import win_session

            win_session.attach(icon, *self._power)
        elif backend == "darwin" and self._power:
            from desktop_agent import mac_session

            self._sleep_observer = mac_session.attach(*self._power)  # kept: NSWorkspace does not
        if not icon.HAS_MENU:
            log.warning(
                "the tray backend %r has no menu: the icon shows the state, a click shows the health summary; "
                "quit with Ctrl+C or by ending the process",
                backend,
            )
        else:
            log.info("tray icon shown with the %r backend", backend)
        return icon

    def _run_pystray(self) -> None:
        self._icon = self._build()
        self.service.messages_ui_ready(bool(self._icon.HAS_MENU))
        # pystray wants the main thread (macOS insists) and runs `_setup` on a thread of its own,
        # which follows the state. The icon changes only when its badge does, on xorg the tooltip
        # (a window name no tray host shows) only with it: each change costs pystray work and X
        # or Win32 calls. __main__ also has a watchdog that ends the process if the tray fails to
        # close.
        self._icon.run(setup=self._setup)
        if self._xorg:
            self._xorg.loop_ended()

    def _setup(self, icon) -> None:
        if self._xorg:
            self._follow_on_xorg(self._xorg)
            return
        icon.visible = True
        while not self.service.stopping:
            self._redraw(self.service.state)
            self._wait_for_change()
        icon.stop()

    def _follow_on_xorg(self, loop: IconLoop) -> None:
        """xorg: the changes run on pystray's loop thread (_on_xorg_loop); this thread only says
        when (see desktop_agent.xorg_icon for why)."""
        try:
            loop.wake()  # shows the icon
            checked, asked_again = time.monotonic(), False
            while not self.service.stopping:
                if icon_key(self.service.state) != self._drawn:
                    loop.wake()
                elif time.monotonic() - checked >= DOCK_CHECK_SECONDS:
                    checked = time.monotonic()
                    if loop.needs_docking():
                        # Said once until the icon is in a tray again, not at each check.
                        (log.debug if asked_again else log.info)("the tray host is not showing the icon; asking again")
                        loop.dock_again()
                        asked_again = True
                    else:
                        asked_again = False
                self._wait_for_change()
            if not loop.close_icon():
                self._icon.stop()
        except Exception as exc:  # noqa: BLE001 - e.g. the X server went away (log-out); pystray's loop ends too
            log.warning("the X11 tray icon stopped following the state (%s: %s)", type(exc).__name__, exc)
        finally:
            loop.close()

    def _on_xorg_loop(self) -> None:
        """On pystray's xorg loop thread, where pystray runs its own code directly."""
        if not self._icon.visible:
            self._icon.visible = True
        self._redraw(self.service.state)

    def _wait_for_change(self) -> None:
        self._changed.wait(timeout=1.0)  # a state change, or a look at `stopping` each second
        self._changed.clear()

    def _redraw(self, state: AgentState) -> None:
        icon = self._icon
        key = icon_key(state)
        title = self.tooltip()
        if key != self._drawn:
            icon.icon = draw_icon(key)
            icon.title = title
            self._drawn = key
        elif not self._xorg and title != icon.title:
            icon.title = title
        if not self._xorg:  # the menu's lines follow the state (xorg has no menu)
            shown = shape(self.entries())
            if shown != self._menu_shown:
                icon.update_menu()
                self._menu_shown = shown


def _with(action, argument):
    return lambda: action(argument)


def _ignore_args(action):
    """pystray passes (icon, item) to an action that takes them; ours take nothing."""
    return lambda: action()
