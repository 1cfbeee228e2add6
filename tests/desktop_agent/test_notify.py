"""desktop_agent.notify against a real notification server: dunst on a private session D-Bus and an
Xvfb display. What dunst received (its history) is what the person would have seen; a button is
pressed through dunst's own context menu. Each case runs the agent's code in a process of its own,
with the session's environment, as the agent runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from agent_helpers import REPO_ROOT, wait_until

pytestmark = [pytest.mark.tray]


def run(code: str, env: dict[str, str], timeout: float = 60) -> dict:
    """Runs `code` (which sets `result`) with the agent's modules importable; returns `result`."""
    script = "import json, sys\n" + textwrap.dedent(code) + "\nprint(json.dumps(result))\n"
    env = {**env, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_notification_reaches_the_notification_server(dunst):
    result = run(
        """
        from desktop_agent import notify
        sent = notify.send("Disk almost full", "Disk /: 95% full <b>", severity="warning")
        result = {"sent": sent}
        """,
        dunst.env,
    )
    assert result == {"sent": True}
    shown = dunst.history()
    assert len(shown) == 1
    assert shown[0]["appname"] == "DashFleet"
    assert shown[0]["summary"] == "Disk almost full"
    assert shown[0]["body"] == "Disk /: 95% full <b>"
    assert dunst.urgency(shown[0]) == "normal"


def test_critical_is_sent_as_critical(dunst):
    assert run('from desktop_agent import notify\nresult = notify.send("T", "B", severity="critical")', dunst.env)
    assert dunst.urgency(dunst.history()[0]) == "critical"


def test_a_button_calls_back_when_pressed(dunst, tmp_path):
    pressed = tmp_path / "pressed"
    code = f"""
        import pathlib, threading
        from desktop_agent import notify
        done = threading.Event()
        def acknowledge():
            pathlib.Path({str(pressed)!r}).write_text("yes")
            done.set()
        sent = notify.send("Message from IT", "Please restart today.", actions=[("Acknowledge", acknowledge)])
        print("SENT", flush=True)
        result = {{"sent": sent, "pressed": done.wait(30)}}
    """
    script = "import json\n" + textwrap.dedent(code) + "\nprint(json.dumps(result))\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**dunst.env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "SENT", proc.stderr.read() if proc.stderr else ""
        wait_until(lambda: dunst.count("displayed") == 1, "the notification on screen")
        dunst.pick("Acknowledge")
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads(out.splitlines()[-1]) == {"sent": True, "pressed": True}, err
    assert pressed.read_text() == "yes"


def test_do_not_disturb_holds_back_all_but_critical(dunst):
    dunst.ctl("set-paused", "true")
    result = run(
        """
        from desktop_agent import notify
        result = {
            "dnd": notify.do_not_disturb(),
            "info": notify.send("Info", "i"),
            "warning": notify.send("Warning", "w", severity="warning"),
            "critical": notify.send("Critical", "c", severity="critical"),
        }
        """,
        dunst.env,
    )
    assert result == {"dnd": True, "info": False, "warning": False, "critical": True}
    assert dunst.count("waiting") == 1  # dunst holds the critical one until it is resumed
    dunst.ctl("set-paused", "false")
    assert [n["summary"] for n in dunst.history()] == ["Critical"]


def test_no_notification_service_on_the_bus_is_false(session_bus):
    """A session bus with nothing owning org.freedesktop.Notifications: False, quickly, no traceback."""
    result = run(
        """
        import logging, time
        logging.basicConfig(level=logging.INFO, stream=sys.stdout)
        from desktop_agent import notify
        started = time.monotonic()
        result = {"sent": notify.send("T", "B"), "again": notify.send("T", "B"), "fast": time.monotonic() - started < 20}
        """,
        session_bus.env(),
    )
    assert result == {"sent": False, "again": False, "fast": True}


def test_no_session_bus_is_false_and_loads_nothing(tmp_path):
    """No D-Bus at all (a headless server, a service): False, and desktop-notifier is not even loaded."""
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY")}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)  # no `bus` socket in it
    result = run(
        """
        from desktop_agent import notify
        sent = notify.send("T", "B", severity="critical")
        result = {"sent": sent, "loaded": sorted(m for m in ("desktop_notifier", "dbus_fast") if m in sys.modules)}
        """,
        env,
    )
    assert result == {"sent": False, "loaded": []}


def test_a_bad_severity_is_refused():
    from desktop_agent import notify

    with pytest.raises(ValueError, match="severity"):
        notify.send("T", "B", severity="loud")  # type: ignore[arg-type]
