"""What the agent loads: never the server's dependencies (the import-linter contract checks the
imports; this checks what a real run actually loads, indirect imports included), and not pydantic
either (about 10 MiB of RSS; tests check the reports against the schema instead), nor Pillow's font
support (FreeType, HarfBuzz: 1.6 MiB; PIL.ImageDraw loads it, so the icons are drawn without it), nor
the tray's notification and D-Bus libraries until a notification or the Linux tray needs them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from agent_helpers import REPO_ROOT

HEAVY = [
    "admin",
    "nicegui",
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlmodel",
    "sqlalchemy",
    "alembic",
    "pydantic",
    "pydantic_core",
]
FONTS = ["PIL.ImageDraw", "PIL.ImageFont", "PIL._imagingft"]
# Loaded when first used, in tray mode only: desktop notifications (desktop-notifier and its D-Bus
# library, several MiB) and the Linux tray's D-Bus (jeepney).
TRAY_ONLY = ["desktop_notifier", "dbus_fast", "jeepney"]


def test_a_real_run_loads_no_server_dependency(agent_dirs, agent_server, fleet_org, machine_id):
    code = textwrap.dedent(f"""
        import json, sys
        from desktop_agent.__main__ import main
        # The tray's modules too: pystray, notifications and D-Bus stay lazy.
        import desktop_agent.tray, desktop_agent.icons, desktop_agent.health_warnings, desktop_agent.notify
        desktop_agent.icons.draw_icon("paused")
        status = main(["--server", {agent_server.url!r}, "--token", {fleet_org.api_key!r},
                       "--machine-id", {machine_id!r}, "--once", "--no-tray"])
        loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY + TRAY_ONLY!r}))
        loaded += sorted(set(sys.modules) & set({FONTS!r}))
        print(json.dumps({{"status": status, "loaded": loaded}}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=agent_dirs.env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"status": 0, "loaded": []}


def test_the_queue_loads_no_sqlite(tmp_path):
    """The queue is files, not SQLite, for SQLite's 1.6 MiB of RSS; only moving an earlier agent's
    SQLite queue over loads it, once."""
    code = textwrap.dedent(f"""
        import sys
        from desktop_agent.queue import ReportQueue
        with ReportQueue({str(tmp_path / "queue")!r}) as queue:
            queue.put({{"n": 1}})
            queue.ack(queue.peek()[0].id)
        print(sorted(name for name in sys.modules if "sqlite" in name))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
