"""One module per page; each registers its route(s) with the services it needs."""

from __future__ import annotations

from admin.services.context import AppServices


def register_pages(services: AppServices) -> None:
    from admin.ui.pages import (
        account,
        alert_settings,
        alerts,
        audit,
        fleet,
        install,
        login,
        machine,
        messages,
        settings,
    )

    for page in (login, fleet, machine, messages, settings, install, account, alerts, alert_settings, audit):
        page.register(services)
