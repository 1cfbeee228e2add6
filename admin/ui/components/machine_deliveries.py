"""The machine page's Messages and Commands panels: send to this machine (admins), and each
delivery's state as it changes (a timer re-reads them), with a script's output as text."""

from __future__ import annotations

import time
from datetime import tzinfo
from typing import Any

from nicegui import ui
from starlette.concurrency import run_in_threadpool

from admin.services.context import AppServices
from admin.services.messaging import MESSAGE
from admin.ui import auth, theme
from admin.ui.components.deliveries import (
    KIND_LABELS,
    SEVERITY_COLOURS,
    CommandForm,
    MessageForm,
    output_box,
    send,
    state_badge,
)
from admin.ui.components.format import exact_time, relative_time

SHOWN = 20  # the machine's latest deliveries of each kind
FLAG = {MESSAGE: "messaging", "command": "commands"}
TITLE = {MESSAGE: "Messages to this machine", "command": "Commands to this machine"}


class DeliveryPanel:
    def __init__(self, services: AppServices, user: auth.SignedInUser, machine_id: str, item_type: str, tz: tzinfo):
        self.services = services
        self.user = user
        self.machine_id = machine_id
        self.item_type = item_type
        self.tz = tz
        self._shown: list[dict[str, Any]] | None = None

    def _load(self) -> list[dict[str, Any]]:
        return self.services.messaging.machine_deliveries(
            org_id=self.user.org_id, machine_id=self.machine_id, item_type=self.item_type, limit=SHOWN
        )

    def build(self) -> None:
        with theme.section(TITLE[self.item_type]).mark(f"feature-{FLAG[self.item_type]}"):
            if self.user.is_admin:
                form = MessageForm() if self.item_type == MESSAGE else CommandForm()
                form.build()

                async def go() -> None:
                    if await send(self.services, form, {"machine_ids": [self.machine_id]}):
                        await self.refresh()

                ui.button("Send" if self.item_type == MESSAGE else "Run", icon="send", on_click=go).props(
                    "unelevated"
                ).mark(f"send-{self.item_type}")
                ui.separator()
            self.entries([])

    @ui.refreshable_method
    def entries(self, deliveries: list[dict[str, Any]]) -> None:
        if not deliveries:
            what = "message" if self.item_type == MESSAGE else "command"
            ui.label(f"No {what} sent to this machine yet.").classes("text-grey-7 text-sm")
            return
        now = time.time()
        for entry in deliveries:
            with ui.column().classes("w-full gap-0 py-1").mark(f"{self.item_type}-entry"):
                with ui.row().classes("w-full items-center gap-2 no-wrap"):
                    if self.item_type == MESSAGE:
                        ui.badge(entry["severity"], color=SEVERITY_COLOURS[entry["severity"]]).props("outline")
                        ui.label(entry["title"]).classes("font-medium break-all grow").mark("entry-title")
                    else:
                        label = KIND_LABELS[entry["kind"]]
                        if entry["kind"] == "run_script":
                            label = f"{label}: {' '.join([entry['args']['name'], *entry['args']['args']])}"
                        ui.label(label).classes("font-medium break-all grow").mark("entry-title")
                    state_badge(entry["state"])
                when = ui.label(
                    f"sent {relative_time(entry['created'], now)}, updated {relative_time(entry['updated'], now)}"
                )
                when.classes("text-xs text-grey-7").tooltip(exact_time(entry["updated"], self.tz))
                if self.item_type == MESSAGE and entry["body"]:
                    ui.label(entry["body"]).classes("text-sm whitespace-pre-wrap break-all")
                if self.item_type != MESSAGE and (entry["output"] or entry["exit_code"] is not None):
                    code = "" if entry["exit_code"] is None else f" (exit code {entry['exit_code']})"
                    with ui.expansion(f"Output{code}").classes("w-full").props("dense").mark("output-toggle"):
                        output_box(entry["output"], entry["output_cut"])

    async def refresh(self) -> None:
        deliveries = await run_in_threadpool(self._load)
        # Redrawn only when something changed, so an opened output stays open.
        if deliveries != self._shown:
            self._shown = deliveries
            self.entries.refresh(deliveries)


def delivery_panels(services: AppServices, user: auth.SignedInUser, machine_id: str, tz: tzinfo) -> list[DeliveryPanel]:
    """The panels of the features that are on (none when both flags are off)."""
    panels = [DeliveryPanel(services, user, machine_id, t, tz) for t in services.messaging.enabled_types()]
    for panel in panels:
        panel.build()
    return panels
