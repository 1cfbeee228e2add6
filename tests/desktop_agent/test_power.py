"""The real agent hears Linux's logind announce sleep and shutdown on the system D-Bus: it says
goodbye (the server lists the machine as away), holds logind's delay lock until the goodbye is
sent, and says hello (a report) after a resume. The "system bus" is a real dbus-daemon of the
test's own, and logind a real D-Bus service on it that owns logind's name and emits its signals."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

import pytest
from agent_helpers import REPO_ROOT, SessionBus, machine, wait_until

pytestmark = pytest.mark.slow

LOGIND = "org.freedesktop.login1"
PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"


class Logind:
    """logind's name, its Inhibit method (a pipe's write end is the lock: logind learns of its
    release when the pipe is closed) and its PrepareForSleep / PrepareForShutdown signals."""

    def __init__(self, address: str) -> None:
        from jeepney import message_bus
        from jeepney.io.threading import open_dbus_connection

        self.conn = open_dbus_connection(address, enable_fds=True)
        self.locks: queue.Queue[tuple[tuple, int]] = queue.Queue()  # (Inhibit's arguments, read end)
        self.calls: queue.Queue = queue.Queue()
        self.conn.send(message_bus.RequestName(LOGIND, 4))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        wait_until(lambda: not self.calls.empty(), "logind's name")

    def _serve(self) -> None:
        from jeepney import HeaderFields, MessageType
        from jeepney.io.threading import ReceiveStopped
        from jeepney.wrappers import new_method_return

        try:
            while True:
                message = self.conn.receive()
                fields = message.header.fields
                if message.header.message_type == MessageType.method_return:
                    self.calls.put("reply")  # to RequestName
                elif fields.get(HeaderFields.member) == "Inhibit":
                    read_end, write_end = os.pipe()
                    self.conn.send(new_method_return(message, "h", (write_end,)))
                    os.close(write_end)  # the agent holds the only copy now
                    self.locks.put((tuple(message.body), read_end))
        except (ReceiveStopped, OSError):
            pass

    def emit(self, member: str, starting: bool) -> None:
        from jeepney import DBusAddress
        from jeepney.wrappers import new_signal

        self.conn.send(new_signal(DBusAddress(PATH, interface=MANAGER), member, "b", (starting,)))

    def next_lock(self) -> int:
        args, read_end = self.locks.get(timeout=60)
        assert args[0] == "sleep:shutdown" and args[3] == "delay", args
        return read_end

    def close(self) -> None:
        self.conn.close()


def released(read_end: int) -> bool:
    """The agent closed its lock (the pipe's other end): what lets logind go on."""
    import select

    return bool(select.select([read_end], [], [], 0)[0]) and os.read(read_end, 1) == b""


@pytest.fixture
def system_bus():
    import shutil

    if not shutil.which("dbus-daemon"):
        pytest.skip("needs dbus-daemon (Debian: dbus; `make test` installs it)")
    bus = SessionBus()  # a bus of the test's own plays the system bus
    yield bus
    bus.close()


def test_sleep_says_goodbye_and_a_resume_says_hello(
    system_bus, agent_dirs, agent_server, fleet_org, machine_id, run_agent
) -> None:
    logind = Logind(system_bus.address)
    try:
        args = ["--server", agent_server.url, "--token", fleet_org.api_key, "--machine-id", machine_id, "--no-tray"]
        env = agent_dirs.env() | {"DBUS_SYSTEM_BUS_ADDRESS": system_bus.address}
        # Reports and heartbeats an hour apart: every contact after the first is the power events' doing.
        agent = run_agent(*args, "--interval", "3600", "--heartbeat-interval", "3600", env=env)
        lock = logind.next_lock()  # taken at start
        first = wait_until(lambda: (m := machine(fleet_org, machine_id)) and m["ts"] and m, "the first report")
        assert first["away"] is None and not released(lock)

        logind.emit("PrepareForSleep", True)
        away = wait_until(lambda: machine(fleet_org, machine_id)["away"], "the goodbye before sleep")
        assert away["expected_back"] is None
        wait_until(lambda: released(lock), "the delay lock released after the goodbye")

        logind.emit("PrepareForSleep", False)  # resumed
        lock = logind.next_lock()  # taken again, for the next sleep
        back = wait_until(
            lambda: (m := machine(fleet_org, machine_id))["away"] is None and m, "the hello after the resume"
        )
        assert back["ts"] > first["ts"], "a report, not only the goodbye's contact"

        logind.emit("PrepareForShutdown", True)
        wait_until(lambda: machine(fleet_org, machine_id)["away"], "the goodbye before shutdown")
        wait_until(lambda: released(lock), "the delay lock released before shutdown")
        assert agent.stop() == 0  # the shutdown's SIGTERM
    finally:
        logind.close()


def test_without_a_system_bus_nothing_is_imported_or_started(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SYSTEM_BUS_ADDRESS"}
    code = (
        "import sys; from desktop_agent import power;"
        "power.DEFAULT_SYSTEM_BUS = '/nonexistent/bus'; power.os.path.exists = lambda p: False;"
        "w = power.watch(print, print); print(w is None, 'jeepney' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "False"], done.stderr
