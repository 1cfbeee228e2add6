"""A Linux tray icon with a menu, spoken directly over D-Bus: StatusNotifierItem (the icon, its
tooltip, its click) and com.canonical.dbusmenu (its menu), through jeepney (pure Python).

These are the protocols of KDE Plasma, GNOME with the AppIndicator extension (as Ubuntu ships it),
Xfce's and Cinnamon's panels, waybar and others. pystray reaches them only through PyGObject and
libayatana-appindicator (about 55 MB of RSS, and system packages a pip install cannot bring);
this module costs about 1 MiB (docs/benchmarks.md, "Tray backends"). It knows nothing of the agent:
desktop_agent.tray gives it callables for the icon, the tooltip and the menu's entries, and calls
refresh() when they may have changed. Only the thread that runs run() reads from the bus; other
threads only send (jeepney's threading connection serialises sends), so refresh() is safe from
the agent's report loop.

Specifications: https://www.freedesktop.org/wiki/Specifications/StatusNotifierItem/ and
libdbusmenu's com.canonical.dbusmenu.xml (layout version 3).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from jeepney import DBusAddress, HeaderFields, MatchRule, Message, MessageType, message_bus, new_method_call
from jeepney.io.threading import DBusConnection, open_dbus_connection
from jeepney.wrappers import new_error, new_method_return, new_signal

from desktop_agent import dbus_calls
from desktop_agent.tray_menu import Entry, shape, walk

log = logging.getLogger(__name__)

WATCHER_NAME = "org.kde.StatusNotifierWatcher"
WATCHER = DBusAddress("/StatusNotifierWatcher", bus_name=WATCHER_NAME, interface=WATCHER_NAME)
ITEM_PATH = "/StatusNotifierItem"
ITEM_IFACE = "org.kde.StatusNotifierItem"
MENU_PATH = "/MenuBar"
MENU_IFACE = "com.canonical.dbusmenu"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
INTROSPECT_IFACE = "org.freedesktop.DBus.Introspectable"

Pixmap = tuple[int, int, bytes]  # width, height, ARGB32 in network byte order


class SniUnavailable(RuntimeError):
    """No session bus, or no StatusNotifierWatcher on it (no panel that shows such items)."""


INTROSPECTION = f"""<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="{ITEM_IFACE}">
    <property name="Category" type="s" access="read"/>
    <property name="Id" type="s" access="read"/>
    <property name="Title" type="s" access="read"/>
    <property name="Status" type="s" access="read"/>
    <property name="WindowId" type="i" access="read"/>
    <property name="IconName" type="s" access="read"/>
    <property name="IconPixmap" type="a(iiay)" access="read"/>
    <property name="ToolTip" type="(sa(iiay)ss)" access="read"/>
    <property name="ItemIsMenu" type="b" access="read"/>
    <property name="Menu" type="o" access="read"/>
    <method name="ContextMenu"><arg name="x" type="i" direction="in"/><arg name="y" type="i" direction="in"/></method>
    <method name="Activate"><arg name="x" type="i" direction="in"/><arg name="y" type="i" direction="in"/></method>
    <method name="SecondaryActivate"><arg name="x" type="i" direction="in"/><arg name="y" type="i" direction="in"/></method>
    <method name="Scroll"><arg name="delta" type="i" direction="in"/><arg name="orientation" type="s" direction="in"/></method>
    <signal name="NewTitle"/><signal name="NewIcon"/><signal name="NewToolTip"/>
    <signal name="NewStatus"><arg name="status" type="s"/></signal>
  </interface>
  <interface name="{MENU_IFACE}">
    <property name="Version" type="u" access="read"/>
    <property name="TextDirection" type="s" access="read"/>
    <property name="Status" type="s" access="read"/>
    <property name="IconThemePath" type="as" access="read"/>
    <method name="GetLayout"><arg type="i" direction="in"/><arg type="i" direction="in"/><arg type="as" direction="in"/>
      <arg type="u" direction="out"/><arg type="(ia{{sv}}av)" direction="out"/></method>
    <method name="GetGroupProperties"><arg type="ai" direction="in"/><arg type="as" direction="in"/>
      <arg type="a(ia{{sv}})" direction="out"/></method>
    <method name="GetProperty"><arg type="i" direction="in"/><arg type="s" direction="in"/><arg type="v" direction="out"/></method>
    <method name="Event"><arg type="i" direction="in"/><arg type="s" direction="in"/><arg type="v" direction="in"/>
      <arg type="u" direction="in"/></method>
    <method name="EventGroup"><arg type="a(isvu)" direction="in"/><arg type="ai" direction="out"/></method>
    <method name="AboutToShow"><arg type="i" direction="in"/><arg type="b" direction="out"/></method>
    <method name="AboutToShowGroup"><arg type="ai" direction="in"/><arg type="ai" direction="out"/>
      <arg type="ai" direction="out"/></method>
    <signal name="ItemsPropertiesUpdated"><arg type="a(ia{{sv}})"/><arg type="a(ias)"/></signal>
    <signal name="LayoutUpdated"><arg type="u"/><arg type="i"/></signal>
    <signal name="ItemActivationRequested"><arg type="i"/><arg type="u"/></signal>
  </interface>
  <interface name="{INTROSPECT_IFACE}"><method name="Introspect"><arg type="s" direction="out"/></method></interface>
  <interface name="{PROPS_IFACE}">
    <method name="Get"><arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="v" direction="out"/></method>
    <method name="GetAll"><arg type="s" direction="in"/><arg type="a{{sv}}" direction="out"/></method>
  </interface>
</node>
"""


def _entry_props(entry: Entry) -> dict[str, tuple[str, Any]]:
    if entry.separator:
        return {"type": ("s", "separator")}
    props: dict[str, tuple[str, Any]] = {
        "label": ("s", entry.label.replace("_", "__")),  # a single _ would mark a mnemonic
        "enabled": ("b", entry.enabled),
    }
    if entry.children:
        props["children-display"] = ("s", "submenu")
    return props


class StatusNotifierItem:
    """The item and its menu on the session bus; run() serves them until stopped."""

    def __init__(
        self,
        *,
        item_id: str,
        title: str,
        pixmaps: Callable[[], Sequence[Pixmap]],
        tooltip: Callable[[], tuple[str, str]],
        entries: Callable[[], Sequence[Entry]],
        activate: Callable[[], object],
    ) -> None:
        self.item_id, self.title = item_id, title
        self._pixmaps, self._tooltip, self._entries, self._activate = pixmaps, tooltip, entries, activate
        try:
            self._conn: DBusConnection = open_dbus_connection("SESSION")
        except Exception as exc:  # noqa: BLE001 - no bus address, refused, ...: no SNI here
            raise SniUnavailable(f"no session D-Bus ({type(exc).__name__}: {exc})") from None
        self.bus_name = f"org.kde.StatusNotifierItem-{os.getpid()}-1"
        self._lock = threading.Lock()
        self._revision = 1
        self._shown: dict[int, Entry] = {}
        self._layout: list[Entry] = []
        self._icon: Sequence[Pixmap] = ()
        self._tip: tuple[str, str] = ("", "")
        self._stopping = False
        try:
            if not self._call(message_bus.NameHasOwner(WATCHER_NAME))[0]:
                raise SniUnavailable("no StatusNotifierWatcher on the session bus (the panel shows no such items)")
            self._call(message_bus.RequestName(self.bus_name, 4))  # 4: do not queue for the name
            rule = MatchRule(type="signal", sender=message_bus.bus_name, member="NameOwnerChanged")
            rule.add_arg_condition(0, WATCHER_NAME)
            self._call(message_bus.AddMatch(rule))
            self._snapshot()
            self._call(new_method_call(WATCHER, "RegisterStatusNotifierItem", "s", (self.bus_name,)))
        except SniUnavailable:
            self._conn.close()
            raise
        except Exception as exc:  # noqa: BLE001 - a watcher that refuses us: fall back to another tray
            self._conn.close()
            raise SniUnavailable(f"the StatusNotifierWatcher refused the item ({type(exc).__name__}: {exc})") from None

    # --- setup: calls and their replies, before run() starts reading ---

    def _call(self, message: Message) -> tuple[Any, ...]:
        return dbus_calls.call(self._conn, message, self._handle)  # a host may ask for our properties meanwhile

    # --- the loop ---

    def run(self, stopping: Callable[[], bool]) -> None:
        """Serves the host's requests until stopping() (checked every second) or close()."""
        try:
            dbus_calls.serve(self._conn, self._handle, lambda: self._stopping or stopping())
        finally:
            self.close()

    def close(self) -> None:
        self._stopping = True
        try:
            self._conn.close()
        except OSError:
            pass

    def refresh(self) -> None:
        """Tells the host what changed: the icon, the tooltip, the menu (LayoutUpdated makes an
        open menu fetch its entries again, so its lines update while it is open)."""
        changed = self._snapshot()
        signals = []
        if "icon" in changed:
            signals.append(new_signal(self._item_addr(), "NewIcon"))
        if "tooltip" in changed:
            signals.append(new_signal(self._item_addr(), "NewToolTip"))
        if "menu" in changed:
            signals.append(new_signal(self._menu_addr(), "LayoutUpdated", "ui", (self._revision, 0)))
        for signal in signals:
            try:
                self._conn.send(signal)
            except OSError:
                return  # closing

    def _snapshot(self) -> set[str]:
        icon, tip, layout = list(self._pixmaps()), self._tooltip(), list(self._entries())
        changed: set[str] = set()
        with self._lock:
            if icon != self._icon:
                self._icon, changed = icon, changed | {"icon"}
            if tip != self._tip:
                self._tip, changed = tip, changed | {"tooltip"}
            if shape(layout) != shape(self._layout):
                self._layout = layout
                self._shown = {entry.id: entry for entry in walk(layout)}
                self._revision += 1
                changed.add("menu")
        return changed

    @staticmethod
    def _item_addr() -> DBusAddress:
        return DBusAddress(ITEM_PATH, interface=ITEM_IFACE)

    @staticmethod
    def _menu_addr() -> DBusAddress:
        return DBusAddress(MENU_PATH, interface=MENU_IFACE)

    # --- requests ---

    def _handle(self, message: Message) -> None:
        header = message.header
        if header.message_type == MessageType.signal:
            if header.fields.get(HeaderFields.member) == "NameOwnerChanged" and message.body[2]:
                log.info("a StatusNotifierWatcher appeared (the panel restarted?): registering the tray icon again")
                self._conn.send(new_method_call(WATCHER, "RegisterStatusNotifierItem", "s", (self.bus_name,)))
            return
        if header.message_type != MessageType.method_call:
            return  # replies to calls nobody waits for (a re-registration)
        path = header.fields.get(HeaderFields.path)
        interface = header.fields.get(HeaderFields.interface)
        member = header.fields.get(HeaderFields.member)
        try:
            reply = self._answer(message, path, interface, member)
        except Exception as exc:
            log.exception("the tray's D-Bus handler for %s.%s failed", interface, member)
            reply = new_error(message, "org.freedesktop.DBus.Error.Failed", "s", (f"{type(exc).__name__}: {exc}",))
        try:
            self._conn.send(reply)
        except OSError:
            pass

    def _answer(self, message: Message, path: str | None, interface: str | None, member: str | None) -> Message:
        args = message.body
        if path not in (ITEM_PATH, MENU_PATH):
            return new_error(message, "org.freedesktop.DBus.Error.UnknownObject", "s", (f"no object {path}",))
        if member == "Introspect":
            return new_method_return(message, "s", (INTROSPECTION,))
        if interface == PROPS_IFACE or (interface is None and member in ("Get", "GetAll")):
            props = self._item_props() if path == ITEM_PATH else self._menu_props()
            if member == "GetAll":
                return new_method_return(message, "a{sv}", (props,))
            if member == "Get" and args[1] in props:
                return new_method_return(message, "v", (props[args[1]],))
            return new_error(message, "org.freedesktop.DBus.Error.UnknownProperty", "s", (f"no property {args}",))
        if path == ITEM_PATH:
            if member in ("Activate", "SecondaryActivate"):
                self._run_action("activate", self._activate)
                return new_method_return(message)
            if member in ("ContextMenu", "Scroll"):
                return new_method_return(message)  # the host shows our menu itself; scrolling does nothing
        elif path == MENU_PATH:
            handler = getattr(self, f"_menu_{member}", None)
            if handler is not None:
                reply: Message = handler(message, *args)
                return reply
        return new_error(message, "org.freedesktop.DBus.Error.UnknownMethod", "s", (f"no method {member}",))

    def _item_props(self) -> dict[str, tuple[str, Any]]:
        with self._lock:
            icon, (title, body) = self._icon, self._tip
        return {
            "Category": ("s", "ApplicationStatus"),
            "Id": ("s", self.item_id),
            "Title": ("s", self.title),
            "Status": ("s", "Active"),
            "WindowId": ("i", 0),
            "IconName": ("s", ""),
            "IconPixmap": ("a(iiay)", list(icon)),
            "OverlayIconName": ("s", ""),
            "AttentionIconName": ("s", ""),
            "ToolTip": ("(sa(iiay)ss)", ("", [], title, body)),
            "ItemIsMenu": ("b", False),
            "Menu": ("o", MENU_PATH),
        }

    @staticmethod
    def _menu_props() -> dict[str, tuple[str, Any]]:
        return {
            "Version": ("u", 3),
            "TextDirection": ("s", "ltr"),
            "Status": ("s", "normal"),
            "IconThemePath": ("as", []),
        }

    def _run_action(self, what: str, action: Callable[[], object]) -> None:
        # Off the bus thread: an action may take a while (a notification, a browser), and the
        # host waits for nothing from it.
        def run() -> None:
            try:
                action()
            except Exception:
                log.exception("the tray action %r failed", what)

        threading.Thread(target=run, name="dashfleet-tray-action", daemon=True).start()

    # --- com.canonical.dbusmenu ---

    def _menu_GetLayout(self, message: Message, parent: int, depth: int, names: list[str]) -> Message:  # noqa: N802
        with self._lock:
            revision, layout = self._revision, list(self._layout)

        def node(entry: Entry, depth: int) -> tuple[str, tuple[int, dict[str, tuple[str, Any]], list[Any]]]:
            props = _entry_props(entry)
            if names:
                props = {k: v for k, v in props.items() if k in names}
            children = [node(child, depth - 1) for child in entry.children] if depth != 0 else []
            return ("(ia{sv}av)", (entry.id, props, children))

        if parent != 0:
            entry = next((e for e in walk(layout) if e.id == parent), None)
            if entry is None:
                return new_error(message, "org.freedesktop.DBus.Error.InvalidArgs", "s", (f"no item {parent}",))
            return new_method_return(message, "u(ia{sv}av)", (revision, node(entry, depth)[1]))
        children = [node(entry, depth - 1) for entry in layout] if depth != 0 else []
        root = (0, {"children-display": ("s", "submenu")}, children)
        return new_method_return(message, "u(ia{sv}av)", (revision, root))

    def _menu_GetGroupProperties(self, message: Message, ids: list[int], names: list[str]) -> Message:  # noqa: N802
        with self._lock:
            shown = dict(self._shown)
        found = []
        for item_id in ids or list(shown):
            if item_id in shown:
                props = _entry_props(shown[item_id])
                found.append((item_id, {k: v for k, v in props.items() if not names or k in names}))
        return new_method_return(message, "a(ia{sv})", (found,))

    def _menu_GetProperty(self, message: Message, item_id: int, name: str) -> Message:  # noqa: N802
        with self._lock:
            entry = self._shown.get(item_id)
        props = _entry_props(entry) if entry else {}
        if name not in props:
            return new_error(message, "org.freedesktop.DBus.Error.InvalidArgs", "s", (f"no {name} on {item_id}",))
        return new_method_return(message, "v", (props[name],))

    def _menu_Event(self, message: Message, item_id: int, event: str, _data: Any, _time: int) -> Message:  # noqa: N802
        self._event(item_id, event)
        return new_method_return(message)

    def _menu_EventGroup(self, message: Message, events: list[tuple[int, str, Any, int]]) -> Message:  # noqa: N802
        unknown = [item_id for item_id, event, _, _ in events if not self._event(item_id, event)]
        return new_method_return(message, "ai", (unknown,))

    def _event(self, item_id: int, event: str) -> bool:
        with self._lock:
            entry = self._shown.get(item_id)
        if entry is None:
            return False
        if event == "clicked" and entry.action is not None and entry.enabled:
            self._run_action(entry.label, entry.action)
        return True

    def _menu_AboutToShow(self, message: Message, _item_id: int) -> Message:  # noqa: N802
        # The entries are always current (refresh() runs on every state change): nothing to update.
        return new_method_return(message, "b", (False,))

    def _menu_AboutToShowGroup(self, message: Message, ids: list[int]) -> Message:  # noqa: N802
        return new_method_return(message, "aiai", ([], []))
