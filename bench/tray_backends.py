"""What a Linux tray menu costs in memory, both ways the issue names (issue 15):

- StatusNotifierItem + com.canonical.dbusmenu spoken with jeepney (pure Python): desktop_agent.sni,
  as the agent runs it (the badges drawn with Pillow, the menu's entries);
- PyGObject + Ayatana AppIndicator (what pystray's `appindicator` backend uses): Debian's
  python3-gi and gir1.2-ayatanaappindicator3-0.1 with the system Python (the same 3.11), an
  indicator with an icon and a menu of the same size.

    .venv/bin/python bench/tray_backends.py

Each runs in a fresh process on a private session bus with a StatusNotifierWatcher (the tests'
jeepney one) and an Xvfb display (GTK needs one); the RSS is read once the item has registered,
and given beside the RSS of the same interpreter without it, so the figure is what the tray way
adds: for jeepney, beside the agent's tray modules and badges already loaded (what any tray costs);
for GTK, beside the bare system Python (the agent's own modules would come on top). Skips what it cannot run (no Xvfb, no system gi) and says so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests" / "desktop_agent"))

from agent_helpers import SessionBus, SniWatcher, VirtualDesktop  # noqa: E402

MIB = 1024 * 1024
SYSTEM_PYTHON = "/usr/bin/python3"

IDLE = "import time; print('READY', flush=True); time.sleep(60)"
# The agent's tray modules and its badges without a bus connection: what the agent loads anyway.
AGENT_IDLE = "from desktop_agent.tray import SNI_SIZES, _pixmap; [_pixmap('ok', s) for s in SNI_SIZES]\n" + IDLE

JEEPNEY = textwrap.dedent("""
    import threading, time
    from desktop_agent.sni import StatusNotifierItem
    from desktop_agent.tray_menu import Entry
    from desktop_agent.tray import SNI_SIZES, _pixmap
    entries = [Entry(100 + i, f"line {i}", lambda: None) for i in range(5)] + [Entry(1)]
    entries += [Entry(2 + i, f"command {i}", lambda: None) for i in range(6)]
    item = StatusNotifierItem(item_id="bench", title="bench", pixmaps=lambda: [_pixmap("ok", s) for s in SNI_SIZES],
                              tooltip=lambda: ("bench", "tooltip"), entries=lambda: entries, activate=lambda: None)
    print("READY", flush=True)
    threading.Timer(60, item.close).start()
    item.run(lambda: False)
""")

APPINDICATOR = textwrap.dedent("""
    import gi
    gi.require_version("Gtk", "3.0")
    gi.require_version("AyatanaAppIndicator3", "0.1")
    from gi.repository import AyatanaAppIndicator3 as AppIndicator, GLib, Gtk
    menu = Gtk.Menu()
    for i in range(11):
        menu.append(Gtk.MenuItem(label=f"entry {i}"))
    menu.show_all()
    indicator = AppIndicator.Indicator.new("bench", "dialog-information", AppIndicator.IndicatorCategory.APPLICATION_STATUS)
    indicator.set_status(AppIndicator.IndicatorStatus.ACTIVE)
    indicator.set_menu(menu)
    GLib.timeout_add(500, lambda: print("READY", flush=True) and False)
    GLib.timeout_add(60000, Gtk.main_quit)
    Gtk.main()
""")


def rss_of(python: str, code: str, env: dict[str, str], watcher: SniWatcher | None) -> float:
    before = len(watcher.registered) if watcher else 0
    proc = subprocess.Popen([python, "-c", code], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"{python} did not start: exit {proc.wait()}")
        deadline = time.monotonic() + 20
        while watcher and len(watcher.registered) == before:
            if time.monotonic() > deadline:
                raise RuntimeError("the item never registered with the watcher")
            time.sleep(0.1)
        time.sleep(1.0)  # let the host's first requests (properties, layout) be answered
        return psutil.Process(proc.pid).memory_info().rss / MIB
    finally:
        proc.kill()
        proc.wait()


def main() -> int:
    if VirtualDesktop.missing_tools() or not shutil.which("dbus-daemon"):
        print("needs Xvfb, trayer and dbus-daemon (Debian: xvfb, trayer, dbus)")
        return 1
    desk, bus = VirtualDesktop(), SessionBus()
    watcher = SniWatcher(bus)
    try:
        env = bus.env(DISPLAY=desk.display, PYTHONPATH=str(REPO_ROOT))
        rows = []
        base = rss_of(sys.executable, AGENT_IDLE, env, None)
        sni = rss_of(sys.executable, JEEPNEY, env, watcher)
        rows.append(("StatusNotifierItem + dbusmenu with jeepney", sys.executable, base, sni))
        has_gi = Path(SYSTEM_PYTHON).exists() and (
            subprocess.run(
                [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('AyatanaAppIndicator3', '0.1')"],
                capture_output=True,
            ).returncode
            == 0
        )
        if has_gi:
            base_gi = rss_of(SYSTEM_PYTHON, IDLE, env, None)
            gi = rss_of(SYSTEM_PYTHON, APPINDICATOR, env, watcher)
            rows.append(("PyGObject + Ayatana AppIndicator (GTK 3)", SYSTEM_PYTHON, base_gi, gi))
        else:
            print("skipped PyGObject + AppIndicator: needs Debian's python3-gi and gir1.2-ayatanaappindicator3-0.1")
        print(f"{'way':45} {'interpreter':40} {'idle MiB':>9} {'with tray':>10} {'added':>7}")
        for name, python, idle, used in rows:
            print(f"{name:45} {python:40} {idle:9.1f} {used:10.1f} {used - idle:7.1f}")
    finally:
        watcher.close()
        bus.close()
        desk.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
