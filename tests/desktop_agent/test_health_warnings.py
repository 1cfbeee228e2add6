"""Local warnings, as the person gets them: the real tray over a real service (tray_driver.py sets
its readings: a full disk cannot be made on demand), notifications to a real notification server
(dunst) on a session D-Bus. Once per rise, not again while it lasts or when it flaps, held while
do-not-disturb is on, none when IT turned them off."""

from __future__ import annotations

import time

import pytest
from agent_helpers import TrayDriver, wait_until

from desktop_agent.tray_text import disk_name

pytestmark = [pytest.mark.tray]

WARNING = "This computer needs attention"
CRITICAL = "This computer has a serious problem"
QUIET_SECONDS = 3.0  # how long a test waits to see that nothing more comes


@pytest.fixture
def tray(dunst, agent_dirs):
    started: list[TrayDriver] = []

    def start(*args: str) -> TrayDriver:
        driver = TrayDriver(agent_dirs.env(DISPLAY=dunst.display, DBUS_SESSION_BUS_ADDRESS=dunst.bus.address), *args)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        code = driver.quit()
        print("\n".join(driver.errors))  # the tray's log, shown when a test fails
        assert code == 0


def titles(dunst) -> list[str]:
    return [n["summary"] for n in dunst.history()]


def test_one_warning_per_rise_with_the_reason_and_what_to_do(dunst, tray):
    driver = tray("--warnings")
    driver.set("disk 40")
    driver.set("disk 92")
    shown = wait_until(dunst.history, "the warning for a disk 92% full")
    assert [n["summary"] for n in shown] == [WARNING]
    assert shown[0]["body"].splitlines()[0] == f"Disk {disk_name()}: 92% full"
    assert "Free up space" in shown[0]["body"]
    assert dunst.urgency(shown[0]) == "normal"

    # Still full, then better, then full again (flapping): no second warning.
    for reading in ("disk 93", "disk 40", "disk 92", "disk 91"):
        driver.set(reading)
    time.sleep(QUIET_SECONDS)
    assert titles(dunst) == [WARNING]

    # Worse: critical, once, as a critical notification.
    driver.set("disk 98")
    driver.set("disk 99")
    shown = wait_until(lambda: dunst.history() if len(dunst.history()) == 2 else None, "the critical warning")
    assert [n["summary"] for n in shown] == [WARNING, CRITICAL]
    assert dunst.urgency(shown[1]) == "critical"
    assert f"Disk {disk_name()}: 98% full" in shown[1]["body"]
    # Back down to warning from critical: nothing new.
    driver.set("disk 92")
    time.sleep(QUIET_SECONDS)
    assert titles(dunst) == [WARNING, CRITICAL]


def test_do_not_disturb_holds_the_warning_until_it_ends(dunst, tray):
    driver = tray("--warnings", "--language", "fr")
    dunst.ctl("set-paused", "true")
    driver.set("disk 92")
    time.sleep(QUIET_SECONDS)
    assert dunst.count("waiting") == 0 and titles(dunst) == []  # not even queued in dunst
    dunst.ctl("set-paused", "false")
    driver.set("disk 93")  # the next reading, after do-not-disturb
    shown = wait_until(dunst.history, "the warning once do-not-disturb is off")
    assert [n["summary"] for n in shown] == ["Cet ordinateur demande votre attention"]
    assert f"Disque {disk_name()} : plein à 93\u00a0%" in shown[0]["body"]


def test_it_can_turn_the_warnings_off(dunst, tray):
    driver = tray()  # local_warnings = false
    driver.set("disk 40")
    driver.set("disk 98")
    time.sleep(QUIET_SECONDS)
    assert titles(dunst) == []
