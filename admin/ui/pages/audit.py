"""The audit log for admins (/audit): who changed what, when, from where; filters, paging, CSV.

Admins only: the page guard shows others a notice, and every action (filter, page, export) asks
the server again whether the user is still an admin of the organisation before it reads anything.
Every value is shown as text (labels and table cells), never as HTML.
"""

from __future__ import annotations

import time
from typing import Any

from nicegui import app, ui
from starlette.concurrency import run_in_threadpool

from admin.services.context import AppServices
from admin.ui import auth
from admin.ui.components.format import exact_time, zone
from admin.ui.guard import signed_in_page

PATH = "/audit"
PAGE_SIZE = 50
PERIODS = {"Last 24 hours": 1, "Last 7 days": 7, "Last 30 days": 30, "Last year": 366, "All": None}
COLUMNS = [
    {"name": "at", "label": "When", "field": "at", "align": "left"},
    {"name": "actor", "label": "Who", "field": "actor", "align": "left"},
    {"name": "address", "label": "From", "field": "address", "align": "left"},
    {"name": "action", "label": "What", "field": "action", "align": "left"},
    {"name": "target", "label": "Target", "field": "target", "align": "left"},
    {"name": "detail", "label": "Detail", "field": "detail", "align": "left"},
]


class AuditScreen:
    def __init__(self, services: AppServices) -> None:
        self.services = services
        self.tz = zone(app.storage.user.get("tz"))
        self.offset = 0
        self.count = 0

    def filters(self) -> dict[str, Any]:
        days = PERIODS[self.period.value]
        return {
            "actor": (self.actor.value or "").strip() or None,
            "action": (self.action.value or "").strip() or None,
            "target": (self.target.value or "").strip() or None,
            "since": None if days is None else time.time() - days * 86400,
        }

    async def _org_if_admin(self) -> int | None:
        user = await auth.current_user(self.services)
        if user is None or not user.is_admin:
            ui.notify("Only an admin can read the audit log.", type="negative")
            return None
        return user.org_id

    def build(self) -> None:
        with ui.row().classes("w-full items-end gap-2"):
            self.actor = ui.input("Who").props("dense outlined clearable maxlength=200").classes("w-40").mark("f-actor")
            self.action = (
                ui.input("What").props("dense outlined clearable maxlength=200").classes("w-40").mark("f-action")
            )
            self.target = ui.input("Target").props("dense outlined clearable maxlength=200").classes("w-40")
            self.target.mark("f-target")
            self.period = ui.select(list(PERIODS), value="Last 30 days").props("dense outlined").classes("w-40")
            self.period.mark("f-period")
            ui.button("Filter", icon="filter_alt", on_click=self.first_page).mark("audit-filter")
            ui.button("Export CSV", icon="download", on_click=self.export).props("outline").mark("audit-export")
        self.table = ui.table(columns=COLUMNS, rows=[], row_key="n").classes("w-full").mark("audit-table")
        self.table.props("dense flat wrap-cells hide-pagination :pagination='{rowsPerPage: 0}'")
        with ui.row().classes("w-full items-center gap-2"):
            self.prev = ui.button(icon="chevron_left", on_click=lambda: self.turn(-1)).props("flat dense").mark("prev")
            self.where = ui.label().mark("audit-where")
            self.next = ui.button(icon="chevron_right", on_click=lambda: self.turn(1)).props("flat dense").mark("next")

    async def first_page(self) -> None:
        self.offset = 0
        await self.load()

    async def turn(self, step: int) -> None:
        self.offset = max(0, self.offset + step * PAGE_SIZE)
        await self.load()

    async def load(self) -> None:
        org_id = await self._org_if_admin()
        if org_id is None:
            return
        page = await run_in_threadpool(
            self.services.audit.entries, org_id=org_id, limit=PAGE_SIZE, offset=self.offset, **self.filters()
        )
        self.count = page["count"]
        self.table.rows = [
            {
                "n": self.offset + i,
                "at": exact_time(e["at"], self.tz),
                "actor": e["actor"],
                "address": e["address"] or "",
                "action": e["action"],
                "target": e["target"],
                "detail": ", ".join(f"{k}: {v}" for k, v in e["detail"].items()),
            }
            for i, e in enumerate(page["data"])
        ]
        self.table.update()
        shown = len(page["data"])
        self.where.text = (
            f"{self.offset + 1}-{self.offset + shown} of {self.count}" if shown else "No entries match these filters."
        )
        self.prev.set_enabled(self.offset > 0)
        self.next.set_enabled(self.offset + shown < self.count)

    async def export(self) -> None:
        org_id = await self._org_if_admin()
        if org_id is None:
            return
        text = await run_in_threadpool(self.services.audit.csv, org_id=org_id, **self.filters())
        ui.download.content(text.encode(), f"dashfleet-audit-{time.strftime('%Y%m%d-%H%M%S')}.csv", "text/csv")


def register(services: AppServices) -> None:
    @signed_in_page(services, PATH, "Audit log", admin_only=True)
    async def audit_page(user: auth.SignedInUser) -> None:
        ui.label("Audit log").classes("text-xl font-bold")
        ui.label(
            "Every change to keys, users, machines, enrolment, messages, commands, alerts and install links, "
            "made in this web app, through the API or with dashfleet-admin. Entries are never changed; "
            "`dashfleet-admin audit verify` checks their hash chain."
        ).classes("text-sm text-grey-7")
        screen = AuditScreen(services)
        screen.build()
        await screen.load()
