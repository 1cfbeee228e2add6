"""One small function per metric, each psutil call guarded.

A permission error or a missing sensor costs one field (None), never the whole sample, in the
spirit of Glances' collectors. CPU is measured between two calls of psutil.cpu_percent(None): it is
primed once at start and then read without ever sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import psutil

from common.constants import AGENT_VERSION, SYSTEM_FIELD_MAX_LENGTH

log = logging.getLogger(__name__)
GIB = 1024**3
T = TypeVar("T")


# Metrics already reported as failing: a sensor that fails every minute is logged once.
_failed: set[str] = set()


def guarded(name: str, read: Callable[[], T]) -> T | None:
    """The value of read(), or None (logged once per metric) when the OS refuses it."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - any sensor failure degrades one field only
        if name not in _failed:
            log.warning("cannot read %s: %s: %s (reported as unknown: null)", name, type(exc).__name__, exc)
            _failed.add(name)
        return None


def prime_cpu() -> float:
    """Starts the CPU measurement window; returns the time it was primed (time.monotonic).

    psutil (>= 5.9.6) keeps the window per thread: prime in the thread that will read.
    """
    guarded("cpu", lambda: psutil.cpu_percent(interval=None))
    return time.monotonic()


def cpu_percent() -> float | None:
    """Busy share of all cores since the previous call; never blocks."""
    return guarded("cpu", lambda: float(psutil.cpu_percent(interval=None)))


@dataclass(frozen=True)
class Usage:
    percent: float
    used_gib: float
    total_gib: float


def memory() -> Usage | None:
    def read() -> Usage:
        vm = psutil.virtual_memory()
        # "Used" as the user means it: what is not available to new programs (caches count free).
        used = vm.total - vm.available
        return Usage(float(vm.percent), used / GIB, vm.total / GIB)

    return guarded("memory", read)


def system_drive() -> str:
    if sys.platform == "win32":
        return os.environ.get("SystemDrive", "C:") + "\\"  # noqa: SIM112 - Windows spells it so
    return "/"


def disk(path: str | None = None) -> Usage | None:
    def read() -> Usage:
        du = psutil.disk_usage(path or system_drive())
        return Usage(float(du.percent), du.used / GIB, du.total / GIB)

    return guarded("disk", read)


@lru_cache(maxsize=1)
def _boot_time() -> float:
    return psutil.boot_time()  # reads /proc/stat on Linux: once is enough, it does not change


def uptime_seconds() -> float | None:
    return guarded("uptime", lambda: max(0.0, time.time() - _boot_time()))


def format_hms(seconds: float) -> str:
    """Uptime as people read it: '3d 04:05:06' or '04:05:06'."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


# --- the machine's identity and OS metadata: read once, they do not change while we run ---

# Keyed hash of the OS machine id, as systemd recommends for application-specific ids: stable for
# this machine, and the raw id (which some software treats as a secret) never leaves it.
_HARDWARE_ID_KEY = b"dashfleet hardware id v1"


def _linux_machine_id() -> str | None:
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            value = Path(candidate).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            return value
    return None


def _windows_machine_guid() -> str | None:
    if sys.platform != "win32":  # winreg exists only there (and mypy checks each platform's branch)
        return None
    import winreg

    key = winreg.OpenKey(
        winreg.HKEY_LOCAL_MACHINE,
        r"SOFTWARE\Microsoft\Cryptography",
        0,
        winreg.KEY_READ | winreg.KEY_WOW64_64KEY,
    )
    with key:
        return str(winreg.QueryValueEx(key, "MachineGuid")[0]) or None


def _macos_platform_uuid() -> str | None:
    out = subprocess.run(
        ["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"], capture_output=True, text=True, timeout=5, check=False
    ).stdout
    for line in out.splitlines():
        if "IOPlatformUUID" in line:
            return line.split("=", 1)[1].strip().strip('"') or None
    return None


def os_machine_id() -> str | None:
    """The operating system's own id of this installation, or None where it has none."""
    readers = {"win32": _windows_machine_guid, "darwin": _macos_platform_uuid}
    return guarded("machine id", readers.get(sys.platform, _linux_machine_id))


@lru_cache(maxsize=1)
def hardware_id(state_dir: str | None = None) -> str:
    """A stable id of this machine: the OS machine id hashed; else an id kept in the state dir."""
    raw = os_machine_id()
    if raw is None and state_dir:
        raw = _kept_random_id(Path(state_dir) / "hardware-id")
    if raw is None:
        # Last resort: the MAC address, which is at least stable across restarts.
        import uuid  # here, like below: only fallbacks need it, and it costs 0.2 MiB of RSS

        raw = f"node-{uuid.getnode():012x}"
    return hmac.new(_HARDWARE_ID_KEY, raw.encode(), hashlib.sha256).hexdigest()[:32]


def _kept_random_id(path: Path) -> str | None:
    def read_or_create() -> str:
        if path.is_file():
            return path.read_text(encoding="ascii").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        import uuid

        value = uuid.uuid4().hex
        path.write_text(value, encoding="ascii")
        return value

    return guarded("kept hardware id", read_or_create)


def _os_version() -> str:
    """What IT calls the version: the distribution on Linux, the build on Windows and macOS."""
    if sys.platform == "win32":
        return f"{platform.release()} ({platform.version()})"
    if sys.platform == "darwin":
        return platform.mac_ver()[0]
    release = platform.freedesktop_os_release()
    return release.get("PRETTY_NAME") or release.get("NAME") or platform.release()


def _clip(value: str) -> str:
    return value[:SYSTEM_FIELD_MAX_LENGTH]


@lru_cache(maxsize=1)
def system_info(state_dir: str | None = None) -> dict[str, str]:
    """OS metadata in the contract's names; `os` is platform.system(): Linux, Windows, Darwin."""
    info = {
        "os": platform.system(),
        "os_version": guarded("os version", _os_version) or platform.release(),
        "platform": platform.platform(),
        "architecture": platform.machine(),
        "python_version": platform.python_version(),
        "hardware_id": hardware_id(state_dir),
        "agent_version": AGENT_VERSION,
        "hostname": socket.gethostname(),
    }
    return {key: _clip(value) for key, value in info.items() if value}
