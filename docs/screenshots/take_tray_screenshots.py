"""The tray's pictures for docs/agent.md, made from the agent's own code on a virtual desktop.

    .venv/bin/python docs/screenshots/take_tray_screenshots.py

- tray-icons.png: each state's badge (desktop_agent.icons) at 16 and 32 px on a light and a dark
  taskbar, drawn by the agent's code;
- tray-states.png: the real tray icon of each state in trayer (Xvfb), screenshots;
- tray-menu-en.png, tray-menu-fr.png: the menu the agent serves over com.canonical.dbusmenu (read
  with GetLayout from the running tray, the disk 92% full), drawn by GTK 3 (Debian's python3-gi) as
  GNOME's AppIndicator extension, Xfce's or Cinnamon's panel would draw it. Skipped, and said, when
  the system Python has no GTK.

Needs Xvfb, trayer and dbus-daemon (`make test` installs them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "desktop_agent"))

from agent_helpers import SessionBus, SniWatcher, TrayDriver, VirtualDesktop, wait_until  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402  (ImageDraw for the captions: here, never in the agent)

from desktop_agent.icons import KEYS, draw_icon  # noqa: E402

STATES = {"ok": "disk 40", "warning": "disk 92", "critical": "disk 98", "unreachable": "unreachable"}
STATES["paused"] = "paused"
LIGHT, DARK = (240, 240, 240), (32, 32, 32)

GTK_MENU = """
import json, sys
import gi
gi.require_version("Gtk", "3.0")
from gi.repository import Gdk, GLib, Gtk
menu = Gtk.Menu()
for label in json.loads(sys.argv[1]):
    menu.append(Gtk.SeparatorMenuItem() if label == "---" else Gtk.MenuItem(label=label))
menu.show_all()
window = Gtk.Window(type=Gtk.WindowType.POPUP)
window.move(0, 0)
window.resize(1, 1)
window.show()
def pop():
    rect = Gdk.Rectangle()
    rect.x, rect.y, rect.width, rect.height = 8, 8, 1, 1
    menu.popup_at_rect(window.get_window(), rect, Gdk.Gravity.NORTH_WEST, Gdk.Gravity.NORTH_WEST, None)
    print("SHOWN", flush=True)
    return False
GLib.timeout_add(300, pop)
GLib.timeout_add(20000, Gtk.main_quit)
Gtk.main()
"""


def icon_sheet() -> None:
    cell, label_h = 76, 16
    sheet = Image.new("RGB", (cell * (len(KEYS) + 1), label_h + cell * 4), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, key in enumerate(KEYS):
        draw.text((cell * (i + 1) + 4, 2), key, fill=(0, 0, 0))
    for row, (background, size) in enumerate([(LIGHT, 16), (LIGHT, 32), (DARK, 16), (DARK, 32)]):
        y = label_h + row * cell
        draw.rectangle((0, y, sheet.width, y + cell - 1), fill=background)
        draw.text((4, y + cell // 2 - 6), f"{size} px", fill=DARK if background == LIGHT else LIGHT)
        for i, key in enumerate(KEYS):
            icon = draw_icon(key, size=size)
            sheet.paste(icon, (cell * (i + 1) + (cell - size) // 2, y + (cell - size) // 2), icon)
    sheet.save(HERE / "tray-icons.png")


def trayer_states(env: dict[str, str]) -> None:
    desk = VirtualDesktop()
    driver = TrayDriver({**env, "DISPLAY": desk.display})
    crops = []
    try:
        for key, command in STATES.items():
            driver.set(command)
            time.sleep(1.5)
            shot = desk.screenshot()
            tray = shot.crop((shot.width - 60, 0, shot.width, 34))
            crops.append((key, tray.crop(tray.convert("L").point(lambda v: 255 if v > 8 else 0).getbbox())))
    finally:
        driver.quit()
        desk.close()
    width = max(90, max(crop.width for _, crop in crops) * 3 + 16)
    sheet = Image.new("RGB", (width * len(crops), max(crop.height for _, crop in crops) * 3 + 20), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (key, crop) in enumerate(crops):
        big = crop.resize((crop.width * 3, crop.height * 3), Image.Resampling.NEAREST)  # as pixels, 3x
        sheet.paste(big, (i * width + (width - big.width) // 2, 18))
        draw.text((i * width + 8, 2), key, fill=(0, 0, 0))
    sheet.save(HERE / "tray-states.png")


def menu_pictures(env: dict[str, str]) -> None:
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", "import gi; gi.require_version('Gtk', '3.0')"], capture_output=True
    )
    if probe.returncode != 0:
        print("tray-menu-*.png skipped: the system Python has no GTK 3 (Debian: python3-gi, gir1.2-gtk-3.0)")
        return
    for language in ("en", "fr"):
        bus = SessionBus()
        watcher = SniWatcher(bus)
        desk = VirtualDesktop(width=420, height=420)
        session = {**env, "DISPLAY": desk.display, "DBUS_SESSION_BUS_ADDRESS": bus.address}
        driver = TrayDriver(session, "--language", language)
        try:
            driver.set("disk 92")
            service = wait_until(lambda w=watcher: w.registered, "the tray to register")[0][0]
            time.sleep(1.0)
            _rev, (_id, _props, children) = watcher.call(
                service, "/MenuBar", "com.canonical.dbusmenu", "GetLayout", "iias", (0, -1, [])
            )
            labels = [props["label"][1] if "label" in props else "---" for _sig, (_i, props, _c) in children]
            gtk = subprocess.Popen(
                ["/usr/bin/python3", "-c", GTK_MENU, json.dumps(labels)],
                env=session,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert gtk.stdout is not None and gtk.stdout.readline().strip() == "SHOWN"
            time.sleep(1.5)
            shot = desk.screenshot()
            gtk.kill()
            gtk.wait()
            box = shot.convert("L").point(lambda v: 255 if v > 100 else 0).getbbox()  # the (light) menu on black
            shot.crop(box).save(HERE / f"tray-menu-{language}.png")
        finally:
            driver.quit()
            desk.close()
            watcher.close()
            bus.close()


def main() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY")}
    icon_sheet()
    trayer_states(env)
    menu_pictures(env)
    print("wrote", ", ".join(sorted(p.name for p in HERE.glob("tray-*.png"))))


if __name__ == "__main__":
    main()
