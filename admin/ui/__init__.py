"""The NiceGUI web app, mounted on the API's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from admin.services.context import AppServices


def mount_ui(app: FastAPI, services: AppServices) -> None:
    # Placeholder until the web UI lands: the pages are registered here and mounted with
    # ui.run_with so the JSON API keeps its own (fast) middleware stack.
    return None
