"""The NiceGUI web app, mounted on the API's FastAPI app.

`ui.run_with` mounts NiceGUI's own app (with its session and request-tracking middleware) under
the API app, so the JSON API keeps its plain FastAPI stack; what mounting costs the API is
measured in docs/benchmarks.md ("Web UI"). Unknown /api/... paths never reach the UI: the API
router answers them with its JSON 404 first.
"""

from __future__ import annotations

from fastapi import FastAPI
from nicegui import app as nicegui_app
from nicegui import ui

from admin.services import server_metrics
from admin.services.context import AppServices
from admin.ui import auth
from admin.ui.pages import register_pages


def mount_ui(app: FastAPI, services: AppServices) -> None:
    register_pages(services)
    if (metrics := server_metrics.get()) is not None:
        # A browser tab holds one websocket while it shows a page: the server's active sessions.
        nicegui_app.on_connect(metrics.web_sessions.inc)
        nicegui_app.on_disconnect(metrics.web_sessions.dec)
    nicegui_app.on_startup(lambda: auth.start_background_work(services))
    ui.run_with(
        app,
        title="DashFleet",
        favicon="🖥️",
        # Signs NiceGUI's cookie (HttpOnly; it names the per-browser storage of preferences).
        storage_secret=services.settings.resolved_storage_secret(),
        show_welcome_message=False,
        # NiceGUI's own cookie names only the per-browser preferences (time zone, dark mode, the
        # fleet's view); who is signed in is in auth.SESSION_COOKIE.
        session_middleware_kwargs={"same_site": "strict"},
    )
