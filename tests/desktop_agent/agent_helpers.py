"""Helpers for the agent's tests: isolated folders, the real agent process, waits, server calls.

Every agent runs with its own config, state and log folders (XDG_* variables), so no test sees a
developer's or an installer's /etc/xdg/dashfleet/agent.toml, and no two tests share a queue.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Generous: the suite may run beside other work on 2 cores. Waits poll and return as soon as the
# awaited thing happens, so this only bounds a failing test.
WAIT_SECONDS = 60.0
STATUS_LINE = re.compile(
    r"^(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?P<outcome>.+?) \| "
    r"CPU (?P<cpu>[\d.]+%|n/a) RAM (?P<ram>[\d.]+%|n/a) Disk (?P<disk>[\d.]+%|n/a) \| "
    r"Score (?P<score>\d+)/100 \| OS (?P<os>\S+)$"
)


def wait_until(check: Callable[[], object], what: str, timeout: float = WAIT_SECONDS, every: float = 0.1):
    """Polls check() until it returns something truthy; fails with `what` after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(every)


@dataclass
class AgentDirs:
    root: Path

    @property
    def config_home(self) -> Path:
        return self.root / "config"

    @property
    def site_config(self) -> Path:
        return self.root / "site-config"

    @property
    def state_home(self) -> Path:
        return self.root / "state"

    @property
    def log_file(self) -> Path:
        return self.state_home / "dashfleet" / "log" / "agent.log"

    @property
    def user_config_file(self) -> Path:
        return self.config_home / "dashfleet" / "agent.toml"

    @property
    def site_config_file(self) -> Path:
        return self.site_config / "dashfleet" / "agent.toml"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DASHFLEET_")}
        env.pop("DISPLAY", None)  # headless unless a test gives a display
        env.update(
            XDG_CONFIG_HOME=str(self.config_home),
            XDG_CONFIG_DIRS=str(self.site_config),
            XDG_STATE_HOME=str(self.state_home),
            XDG_CACHE_HOME=str(self.root / "cache"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The same isolation for code run inside the test process."""
        for key, value in self.env().items():
            if key.startswith("XDG_"):
                monkeypatch.setenv(key, value)
        for key in list(os.environ):
            if key.startswith("DASHFLEET_"):
                monkeypatch.delenv(key)


class AgentProcess:
    """`python -m desktop_agent ARGS` (or `program ARGS`: the packaged agent), its stdout read line
    by line as it runs."""

    def __init__(self, args: list[str], env: dict[str, str], program: list[str] | None = None):
        self.args = args
        self.proc = subprocess.Popen(
            [*(program or [sys.executable, "-m", "desktop_agent"]), *args],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(["--- stdout ---", *self.lines, "--- stderr ---", *self.errors])

    def status_lines(self, outcome_prefix: str = "") -> list[str]:
        return [
            line
            for line in list(self.lines)
            if (m := STATUS_LINE.match(line)) and m["outcome"].startswith(outcome_prefix)
        ]

    def wait_for_lines(self, count: int, outcome_prefix: str = "", timeout: float = WAIT_SECONDS) -> list[str]:
        def enough():
            if self.proc.poll() is not None and len(self.status_lines(outcome_prefix)) < count:
                pytest.fail(f"the agent exited with {self.proc.returncode}\n{self.output()}", pytrace=False)
            return len(self.status_lines(outcome_prefix)) >= count

        wait_until(enough, f"{count} status line(s) starting {outcome_prefix!r}\n{self.output()}", timeout)
        return self.status_lines(outcome_prefix)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as a service manager would; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._drain()
        return code

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL: no handler, no cleanup, as in a crash
        self.proc.wait(timeout=10)
        self._drain()

    def _drain(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5)


def run_agent_once(
    agent_dirs: AgentDirs, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "desktop_agent", *args],
        cwd=REPO_ROOT,
        env=env or agent_dirs.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_on_port(server, port: int):
    """(Re)starts a prepared ServerProcess on a port of our choosing: an agent that was started
    while the server was down must find it at the same URL when it comes back."""
    server.port, server.url = port, f"http://127.0.0.1:{port}"
    if not server._start_once():
        server.fail_to_start(f"the server exited with status {server.proc.returncode}")
    return server


def history(org, machine_id: str) -> list[dict]:
    resp = org.get("/api/fleet/machine/history", params={"machine_id": machine_id, "hours": 1})
    assert resp.status_code == 200, resp.text
    return resp.json()["samples"]


def machine(org, machine_id: str) -> dict | None:
    resp = org.get("/api/fleet/machine", params={"machine_id": machine_id})
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, resp.text
    return resp.json()


def queued_reports(dirs: AgentDirs) -> list[dict]:
    """The reports in the agent's on-disk queue, oldest first (only while no agent runs)."""
    from desktop_agent.queue import ReportQueue

    paths = [path for path in (dirs.state_home / "dashfleet").glob("queue-*") if path.is_dir()]
    assert len(paths) == 1, f"expected one queue folder, found {paths}"
    with ReportQueue(paths[0]) as queue:
        return [item.body for item in queue.peek(100_000)]


def server_is_down(url: str) -> bool:
    try:
        httpx.get(url + "/api/status", timeout=1)
    except httpx.TransportError:
        return True
    return False


def make_private_ca(folder: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for 127.0.0.1 (openssl): a private CA and its server."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


@contextmanager
def serve_tls(key: Path, cert: Path) -> Iterator[str]:
    """A real TLS server on 127.0.0.1 that answers every POST as the API accepts a report or a
    heartbeat ({"ok": true}): enough for the agent, to check its TLS. Yields the https:// URL.
    Also used by bench/agent_footprint.py for the RSS with an https:// server."""
    answer = json.dumps({"ok": True, "timestamp": time.time()}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class VirtualDesktop:
    """Xvfb plus trayer (a system tray host): a desktop session with a tray, but no screen.

    Also used by bench/agent_footprint.py for the RSS with the tray shown.
    """

    TOOLS = ("Xvfb", "trayer")

    @classmethod
    def missing_tools(cls) -> list[str]:
        return [tool for tool in cls.TOOLS if not shutil.which(tool)]

    def __init__(self, width: int = 480, height: int = 120, tray: bool = True):
        import tempfile

        self._procs: list[subprocess.Popen] = []
        self._logs = Path(tempfile.mkdtemp(prefix="dashfleet-xvfb-"))
        read_fd, write_fd = os.pipe()
        # -displayfd: Xvfb picks a free display number and writes it once it accepts clients.
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=(self._logs / "xvfb.log").open("w"),
        )
        os.close(write_fd)
        self._procs.append(xvfb)
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            self.close()
            raise RuntimeError(f"Xvfb did not start: {(self._logs / 'xvfb.log').read_text()}")
        self.display = f":{number}"
        self._trayer: subprocess.Popen | None = None
        self._trayer_starts = 0
        if tray:
            try:
                self.start_tray()
            except BaseException:  # pytest's failure too: never leave Xvfb and trayer running
                self.close()
                raise

    TRAYER_STARTS = 3

    def start_tray(self) -> None:
        """Starts trayer and waits until it owns the system tray selection."""
        self._trayer, self._trayer_starts = None, 0
        wait_until(self._tray_is_up, "trayer to own the system tray selection", timeout=30)

    def stop_tray(self) -> None:
        """Ends trayer, as when the panel quits or crashes: its icons go back to the root window."""
        assert self._trayer is not None
        self._trayer.terminate()
        self._trayer.wait(timeout=10)

    def _start_trayer(self) -> None:
        self._trayer_starts += 1
        self._trayer = subprocess.Popen(
            [
                "trayer",
                "--edge",
                "top",
                "--align",
                "right",
                "--widthtype",
                "request",
                "--height",
                "32",
                "--SetDockType",
                "true",
                "--expand",
                "true",
                "--transparent",
                "false",
            ],
            env={**os.environ, "DISPLAY": self.display},
            stdout=subprocess.DEVNULL,
            stderr=(self._logs / "trayer.log").open("a"),
        )
        self._procs.append(self._trayer)

    def _tray_is_up(self) -> bool:
        """Whether trayer owns the tray; starts it, and again when it quit before it did.

        On a loaded machine (CI's two cores under the parallel suite) libX11 clients now and then
        fail to open a display that Xvfb has just reported ready ("cannot open display"), and trayer
        then exits; started again a moment later it connects (seen in 14 of 80 starts under load,
        every second start worked). python-xlib, used here, was not affected.
        """
        from Xlib import X, display

        if self._trayer is None or self._trayer.poll() is not None:
            if self._trayer_starts == self.TRAYER_STARTS:
                log = (self._logs / "trayer.log").read_text()
                pytest.fail(f"trayer quit {self._trayer_starts} times on {self.display}:\n{log}", pytrace=False)
            self._start_trayer()
            return False
        with_display = display.Display(self.display)
        try:
            atom = with_display.intern_atom("_NET_SYSTEM_TRAY_S0")
            return with_display.get_selection_owner(atom) != X.NONE
        finally:
            with_display.close()

    def click(self, where: tuple[int, int], button: int = 1) -> None:
        """A real left click at a screen position, through the XTEST extension."""
        from Xlib import X, display
        from Xlib.ext import xtest

        conn = display.Display(self.display)
        try:
            conn.screen().root.warp_pointer(*where)
            conn.sync()
            xtest.fake_input(conn, X.ButtonPress, button)
            xtest.fake_input(conn, X.ButtonRelease, button)
            conn.sync()
        finally:
            conn.close()

    def screenshot(self):
        from PIL import ImageGrab

        return ImageGrab.grab(xdisplay=self.display)

    def close(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self._logs, ignore_errors=True)  # a failure has put the logs in its message


SESSION_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={folder}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SessionBus:
    """A private session D-Bus (dbus-daemon), as a desktop session has one. No service directories:
    nothing is started on demand, so a test decides which services run (dunst, a tray watcher)."""

    def __init__(self) -> None:
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="dashfleet-dbus-"))
        config = self.folder / "session.conf"
        config.write_text(SESSION_BUS_CONFIG.format(folder=self.folder))
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            self.close()
            raise RuntimeError("dbus-daemon did not start")

    def env(self, base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["DBUS_SESSION_BUS_ADDRESS"] = self.address
        env.update(extra)
        return env

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


# dunst's context menu (`dunstctl context`) asks this program to choose one of a notification's
# actions, as a person would in dmenu: it picks the line naming $DUNST_PICK.
DMENU_SCRIPT = """#!/bin/sh
grep -F "#$(cat {pick_file})" | head -n 1
"""


class Dunst:
    """dunst, a real notification server, on a SessionBus and an X display (Xvfb).

    `history()` is what it was sent (after close_all: dunst keeps closed notifications there),
    `pick(label)` presses a notification's button through dunst's own context menu.
    """

    TOOLS = ("dbus-daemon", "dunst", "dunstctl", "Xvfb")

    @classmethod
    def missing_tools(cls) -> list[str]:
        return [tool for tool in cls.TOOLS if not shutil.which(tool)]

    def __init__(self, bus: SessionBus, display: str) -> None:
        self.bus = bus
        self.display = display
        folder = bus.folder
        self._pick_file = folder / "pick"
        self._pick_file.write_text("")
        dmenu = folder / "dmenu.sh"
        dmenu.write_text(DMENU_SCRIPT.format(pick_file=self._pick_file))
        dmenu.chmod(0o755)
        config = folder / "dunstrc"
        # The format rules put the urgency into the text dunst keeps (its history has no urgency field).
        config.write_text(
            f'[global]\n    dmenu = "{dmenu}"\n    show_indicators = no\n'
            + "".join(f'[urgency_{u}]\n    format = "{u}: %s\\n%b"\n' for u in ("low", "normal", "critical"))
        )
        self.env = bus.env(DISPLAY=display)
        self.proc = subprocess.Popen(
            ["dunst", "-config", str(config)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(folder / "dunst.log").open("w"),
        )
        wait_until(lambda: self.ctl("is-paused", check=False).returncode == 0, "dunst to own the bus name", 30)

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["dunstctl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=10
        )

    def history(self) -> list[dict[str, str]]:
        """Every notification dunst got so far (closing them first), oldest first, as plain strings."""
        self.ctl("close-all")
        data = json.loads(self.ctl("history").stdout)["data"][0]
        return [{key: value["data"] for key, value in item.items()} for item in reversed(data)]

    @staticmethod
    def urgency(notification: dict[str, str]) -> str:
        """low, normal or critical: from the text the format rules above made."""
        return notification["message"].split(":", 1)[0]

    def count(self, which: str = "displayed") -> int:
        return int(self.ctl("count", which).stdout.strip())

    def pick(self, label: str) -> None:
        """Chooses the action `label` of the newest notification shown, through dunst's context menu."""
        self._pick_file.write_text(label)
        self.ctl("context")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class SniWatcher:
    """A minimal org.kde.StatusNotifierWatcher, as a panel runs one (KDE's, the AppIndicator
    extension's, Xfce's), written with jeepney on a SessionBus: it records which items register.
    Debian 12 packages no stand-alone watcher. Also gives the test a connection to call the item's
    methods with (call())."""

    NAME = "org.kde.StatusNotifierWatcher"

    def __init__(self, bus: SessionBus) -> None:
        self.registered: list[tuple[str, str]] = []  # (the item's service, its connection's unique name)
        self._conn = _jeepney_connection(bus.address)
        self._client = _jeepney_connection(bus.address)
        from jeepney import message_bus
        from jeepney.io.threading import DBusRouter, Proxy

        self._router = DBusRouter(self._conn)
        reply = Proxy(message_bus, self._router, timeout=10).RequestName(self.NAME, 4)
        assert reply == (1,), f"could not own {self.NAME}: {reply}"
        self._router.close()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._client_router = DBusRouter(self._client)

    def _serve(self) -> None:
        from jeepney import HeaderFields, MessageType
        from jeepney.io.threading import ReceiveStopped
        from jeepney.wrappers import new_error, new_method_return, new_signal

        while not self._stop.is_set():
            try:
                msg = self._conn.receive(timeout=0.5)
            except TimeoutError:
                continue
            except (ReceiveStopped, OSError):
                return
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            sender = msg.header.fields.get(HeaderFields.sender)
            if member == "RegisterStatusNotifierItem":
                service = msg.body[0]
                self.registered.append((service, sender))
                self._conn.send(new_method_return(msg))
                from jeepney import DBusAddress

                here = DBusAddress("/StatusNotifierWatcher", interface=self.NAME)
                self._conn.send(new_signal(here, "StatusNotifierItemRegistered", "s", (service,)))
            elif member == "Get" or member == "GetAll":
                props = {
                    "RegisteredStatusNotifierItems": ("as", [s for s, _ in self.registered]),
                    "IsStatusNotifierHostRegistered": ("b", True),
                    "ProtocolVersion": ("i", 0),
                }
                if member == "GetAll":
                    self._conn.send(new_method_return(msg, "a{sv}", (props,)))
                else:
                    self._conn.send(new_method_return(msg, "v", (props[msg.body[1]],)))
            elif member == "RegisterStatusNotifierHost":
                self._conn.send(new_method_return(msg))
            else:
                self._conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod"))

    def call(self, service: str, path: str, interface: str, member: str, signature: str | None = None, body=()):
        """A method call on the item (as the panel makes them); returns the reply's body."""
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import unwrap_msg

        address = DBusAddress(path, bus_name=service, interface=interface)
        reply = self._client_router.send_and_get_reply(new_method_call(address, member, signature, body), timeout=10)
        return unwrap_msg(reply)

    def close(self) -> None:
        self._stop.set()
        self._client_router.close()
        self._conn.close()
        self._client.close()
        self._thread.join(timeout=5)


def _jeepney_connection(address: str):
    from jeepney.io.threading import open_dbus_connection

    return open_dbus_connection(address)  # jeepney takes a bus address as well as "SESSION"


class TrayDriver:
    """tests/desktop_agent/tray_driver.py in a process of its own: the real tray over a service
    whose state the test sets (see that file)."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        env = {**env, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        script = Path(__file__).with_name("tray_driver.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.errors: list[str] = []
        threading.Thread(target=AgentProcess._read, args=(self.proc.stderr, self.errors), daemon=True).start()

    def set(self, command: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == f"SET {command}", f"the tray driver said {answer!r}:\n" + "\n".join(self.errors)

    def quit(self) -> int:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


# --- the badges' marks, told apart by brightness alone (tests of the icons and of the real tray) ---

GRID = 24  # the marks are compared on a GRID x GRID raster of the badge


def mark_cells(image, background: tuple[int, int, int] | None = None) -> set[int]:
    """The badge's mark as cells of a GRID x GRID raster, found by brightness alone (no hue): the
    cells inside the badge (within 3/4 of its radius, so not the rim) whose brightness differs
    from the badge's fill (the median) by more than 60. The badge is found as the pixels that are
    neither black (around it, as trayer draws it) nor the background."""

    def on_badge(pixel) -> bool:
        if max(pixel[:3]) <= 20:
            return False
        return background is None or max(abs(a - b) for a, b in zip(pixel, background)) > 12

    from PIL import Image

    rgb = image.convert("RGB")
    points = [(x, y) for y in range(rgb.height) for x in range(rgb.width) if on_badge(rgb.getpixel((x, y)))]
    assert points, "no badge in the image"
    xs, ys = zip(*points)
    cells = list(
        rgb.crop((min(xs), min(ys), max(xs) + 1, max(ys) + 1))
        .convert("L")
        .resize((GRID, GRID), Image.Resampling.BILINEAR)
        .get_flattened_data()
    )
    middle = (GRID - 1) / 2
    inside = [i for i in range(GRID * GRID) if math.hypot(i % GRID - middle, i // GRID - middle) < 0.75 * GRID / 2]
    fill = sorted(cells[i] for i in inside)[len(inside) // 2]
    return {i for i in inside if abs(cells[i] - fill) > 60}


@functools.lru_cache(maxsize=1)
def reference_marks() -> dict[str, frozenset[int]]:
    """Each state's mark, from the agent's own 64 px badge on black (as trayer shows it)."""
    from PIL import Image

    from desktop_agent.icons import KEYS, draw_icon

    marks = {}
    for key in KEYS:
        icon = draw_icon(key, size=64)
        on_black = Image.new("RGB", icon.size)
        on_black.paste(icon, mask=icon)
        marks[key] = frozenset(mark_cells(on_black))
    return marks


def which_mark(image, background: tuple[int, int, int] | None = None) -> tuple[str, dict[str, float]]:
    """The state whose mark matches the image's best (overlap over union of the cells), and the scores."""
    seen = mark_cells(image, background)
    scores = {key: len(seen & cells) / len(seen | cells) for key, cells in reference_marks().items()}
    return max(scores, key=lambda key: scores[key]), scores
