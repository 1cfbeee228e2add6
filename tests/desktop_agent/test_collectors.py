"""Collectors read this machine for real; a failing sensor costs one field, never the sample."""

from __future__ import annotations

import hashlib
import hmac
import logging
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from agent_helpers import REPO_ROOT

from desktop_agent import collectors


def test_memory_and_disk_are_real_readings_within_range():
    mem, disk = collectors.memory(), collectors.disk()
    assert 0 <= mem.percent <= 100 and 0 < mem.used_gib <= mem.total_gib
    assert mem.total_gib == pytest.approx(psutil.virtual_memory().total / 1024**3)
    assert 0 <= disk.percent <= 100 and 0 < disk.used_gib <= disk.total_gib
    assert disk.total_gib == pytest.approx(psutil.disk_usage("/").total / 1024**3)


def test_uptime_matches_the_boot_time():
    assert collectors.uptime_seconds() == pytest.approx(time.time() - psutil.boot_time(), abs=5)


def test_cpu_reading_never_blocks_and_sees_a_busy_core():
    """Primed once, then read: the reading covers the window since the previous call."""
    collectors.prime_cpu()
    stop = time.monotonic() + 0.5
    while time.monotonic() < stop:  # keep one core busy for the whole window
        pass
    started = time.process_time()
    reading = collectors.cpu_percent()
    assert time.process_time() - started < 0.05, "reading the CPU must not wait for a sample"
    # One of this machine's cores was busy throughout, so the whole machine cannot look idle.
    assert reading >= 100 / (psutil.cpu_count() or 1) / 2


def test_cpu_window_is_per_thread_so_each_loop_primes_its_own():
    """psutil keeps one window per thread; an unprimed thread's first reading is a meaningless 0."""
    readings = []

    def worker():
        collectors.prime_cpu()
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            pass
        readings.append(collectors.cpu_percent())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert readings[0] > 0


def test_a_failing_sensor_degrades_one_field_and_is_logged_once(caplog, monkeypatch):
    def refuse(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(psutil, "disk_usage", refuse)  # what an OS refusal looks like to psutil
    monkeypatch.setattr(collectors, "_failed", set())
    with caplog.at_level(logging.WARNING, logger="desktop_agent.collectors"):
        assert collectors.disk() is None
        assert collectors.disk() is None
    assert [r.getMessage() for r in caplog.records].count(
        "cannot read disk: PermissionError: [Errno 13] Permission denied: '/' (reported as unknown: null)"
    ) == 1
    assert collectors.memory() is not None  # the other sensors still read


def test_a_missing_disk_path_is_a_degraded_field():
    assert collectors.disk("/no/such/mount/point") is None


@pytest.mark.parametrize(("seconds", "shown"), [(0, "00:00:00"), (3723, "01:02:03"), (90061.9, "1d 01:01:01")])
def test_uptime_as_people_read_it(seconds, shown):
    assert collectors.format_hms(seconds) == shown


def test_system_info_uses_the_contract_names():
    info = collectors.system_info()
    assert info["os"] == platform.system() and info["os"] in {"Linux", "Windows", "Darwin"}
    assert info["hostname"] == socket.gethostname()
    assert info["python_version"] == platform.python_version()
    assert set(info) <= {
        "os",
        "os_version",
        "platform",
        "architecture",
        "python_version",
        "hardware_id",
        "agent_version",
        "hostname",
    }
    assert all(isinstance(v, str) and 0 < len(v) <= 256 for v in info.values())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /etc/machine-id")
def test_hardware_id_is_the_os_machine_id_hashed_not_the_raw_id():
    raw = Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").is_file() else None
    if not raw:
        pytest.skip("this machine has no /etc/machine-id")
    expected = hmac.new(b"dashfleet hardware id v1", raw.encode(), hashlib.sha256).hexdigest()[:32]
    assert collectors.hardware_id() == expected
    assert raw not in collectors.hardware_id()


def test_hardware_id_is_stable_across_processes(tmp_path):
    """A restart (or a reinstall, which keeps the OS id) gives the same id."""
    code = f"from desktop_agent.collectors import hardware_id; print(hardware_id({str(tmp_path)!r}))"
    ids = {
        subprocess.run(
            [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(ids) == 1 and len(ids.pop()) == 32


def test_without_an_os_id_the_fallback_is_kept_in_the_state_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(collectors, "os_machine_id", lambda: None)  # as on a system without one
    collectors.hardware_id.cache_clear()
    try:
        first = collectors.hardware_id(str(tmp_path))
        collectors.hardware_id.cache_clear()
        assert collectors.hardware_id(str(tmp_path)) == first
        assert (tmp_path / "hardware-id").is_file()
    finally:
        collectors.hardware_id.cache_clear()
