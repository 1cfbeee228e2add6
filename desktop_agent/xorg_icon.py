"""What pystray's X11 (xorg) icon needs from us to stay on screen and never hang (Linux, BSD).

pystray's xorg backend has one X connection, read by its loop thread. A change made from any other
thread (showing the icon, a new badge, stop()) writes a request to that same connection and waits
for the loop to carry it out. python-xlib is not safe for that: two threads on one connection now
and then lose a reply or an event. Seen here on a loaded machine (the tests' tray under the parallel
suite): the loop waiting forever for a reply while the icon was being shown, and Quit hanging.

So here pystray's connection is used by its loop thread alone. IconLoop wakes that thread with an X
client message sent over a connection of its own, and the thread makes the change itself (pystray
then runs its own code directly, as it does for its loop thread). Quit destroys the icon's window
over the same private connection; the X server tells the loop, which ends as it does after stop().
The same connection checks that the tray host shows the icon (needs_docking).

Everything here reaches into pystray 0.19's private parts (`_display`, `_window`,
`_message_handlers`, `_running`); tests/desktop_agent/test_tray.py runs it against the real
backend under Xvfb, so an upgrade that moves them fails there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
WAKE_ATOM = "_DASHFLEET_TRAY_WAKE"


def skip_xlib_extensions() -> None:
    """python-xlib imports and sets up a module for every X extension the server offers (RANDR,
    XInput, RECORD, ... about 15) on each connection it opens. pystray, and this module, use the
    core protocol only: without them the tray costs 0.8 MiB less RSS. Only this process's
    connections are affected (the agent makes no others)."""
    try:
        import Xlib.ext  # python-xlib: Linux only
    except ImportError:
        return
    Xlib.ext.__extensions__ = []  # the list Xlib.display.Display() walks at each connection


class IconLoop:
    """Runs `on_wake` on pystray's loop thread each time wake() is called, from any thread.

    Made on the main thread before the icon's loop starts (icon.run), so that nothing else uses
    pystray's connection while it adds its handlers. Raises OSError or an Xlib error if the display
    refuses a second connection.
    """

    def __init__(self, icon: Any, on_wake: Callable[[], None]) -> None:
        from Xlib import X, display

        self._icon = icon
        self._conn = display.Display(icon._display.get_display_name())
        self._window = self._conn.create_resource_object("window", icon._window.id)
        self._wake_atom = self._conn.intern_atom(WAKE_ATOM)
        self._tray_atom = self._conn.intern_atom(f"_NET_SYSTEM_TRAY_S{self._conn.get_default_screen()}")
        self._dock_again = False
        self._lock = threading.Lock()  # wake() and close_icon() may come from two threads
        handlers = icon._message_handlers
        pystray_messages = handlers.get(X.ClientMessage, lambda event: None)

        def on_client_message(event: Any) -> None:
            if event.client_type != self._wake_atom:
                pystray_messages(event)
                return
            try:
                if self._dock_again and icon.visible:
                    self._dock_again = False
                    icon._show()  # on the loop thread: pystray asks the tray host to dock it
                on_wake()
            except Exception as exc:  # noqa: BLE001 - raised here, it would end pystray's loop and the icon
                log.error("the tray icon could not be updated (%s: %s)", type(exc).__name__, exc)

        handlers[X.ClientMessage] = on_client_message
        # pystray handles a left click (the default action) but never asks X for button events,
        # so clicks are lost (pystray issue #151, 0.19.5): ask for them on its window.
        icon._window.change_attributes(event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
        icon._display.flush()

    def wake(self) -> None:
        """Asks the loop thread to run on_wake (returns at once; the loop runs it soon after)."""
        from Xlib import X
        from Xlib.protocol import event

        message = event.ClientMessage(
            window=self._window, client_type=self._wake_atom, data=(32, (X.CurrentTime, 0, 0, 0, 0))
        )
        with self._lock:
            # No event mask: X delivers the message to the window's creator, pystray's connection.
            self._window.send_event(message, event_mask=X.NoEventMask)
            self._conn.flush()

    def needs_docking(self) -> bool:
        """Whether a tray host is running but the icon is not in it.

        pystray asks the tray host to dock the icon when it is shown, and again only at a change of
        badge or when the host it knew quits. A request can be lost (trayer, just started, on a loaded
        machine: 9 of 30 test runs here needed a second request), and a host that starts after the icon (a
        panel coming up at login beside the agent) is never asked. Checked over this connection:
        is the icon's window still a child of the root window while the tray selection has an
        owner?"""
        from Xlib import X

        with self._lock:
            tree = self._window.query_tree()
            if tree.parent.id != tree.root.id:
                return False
            return bool(self._conn.get_selection_owner(self._tray_atom) != X.NONE)

    def dock_again(self) -> None:
        """Has the loop thread ask the tray host again to dock the (shown) icon."""
        self._dock_again = True
        self.wake()

    def close_icon(self) -> bool:
        """Ends pystray's loop by destroying its window; False if that failed (use icon.stop())."""
        try:
            with self._lock:
                self._window.destroy()
                self._conn.sync()
        except Exception as exc:  # noqa: BLE001 - stop() is the fallback
            log.info("closing the tray icon directly failed (%s: %s)", type(exc).__name__, exc)
            return False
        return True

    def loop_ended(self) -> None:
        """pystray's loop has returned (Quit, or its X connection broke): closes pystray's connection
        now, and leaves nothing for pystray's own clean-up at garbage collection, which would use
        that connection again and, when it broke, print a traceback ("Exception ignored in
        Icon.__del__")."""
        icon = self._icon
        icon._running = False
        with contextlib.suppress(Exception):  # a connection the server already closed
            icon._display.close()
        icon._display.close = lambda: None  # the connection is closed: pystray's close is a no-op

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):  # a connection the server already closed
            self._conn.close()
