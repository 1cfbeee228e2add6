"""The fleet page's sending: a message or a command to the selected machines, or to every machine
that matches the current filter (admins only, checked again when sending)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui
from starlette.concurrency import run_in_threadpool

from admin.services.context import AppServices
from admin.services.messaging import MAX_TARGETS, MESSAGE
from admin.ui import auth
from admin.ui.components.deliveries import CommandForm, MessageForm, send
from admin.ui.components.fleet_view import FleetView


class FleetSend:
    def __init__(self, services: AppServices, user: auth.SignedInUser, table: ui.table, view: Callable[[], FleetView]):
        self.services = services
        self.user = user
        self.table = table
        self.view = view  # the filters shown now

    def build(self) -> None:
        self.table.set_selection("multiple")
        with ui.row().classes("w-full items-center gap-2"):
            for item_type in self.services.messaging.enabled_types():
                label = "Send a message" if item_type == MESSAGE else "Run a command"
                icon = "campaign" if item_type == MESSAGE else "terminal"
                ui.button(label, icon=icon, on_click=lambda t=item_type: self.open(t)).props("outline dense").mark(
                    f"fleet-send-{item_type}"
                )

    def _matching_ids(self, view: FleetView) -> list[str]:
        page = self.services.fleet.list_fleet(
            org_id=self.user.org_id, flt=view.fleet_filter(), limit=MAX_TARGETS, offset=0, take_expired=False
        )
        return [m.machine_id for m in page.data]

    def open(self, item_type: str) -> None:
        selected = [row["machine_id"] for row in self.table.selected]
        view = self.view()
        count = self.table.pagination.get("rowsNumber", 0)
        choices = {
            "matching": f"All {count} machines that match the filter" if view.is_filtered else f"All {count} machines"
        }
        if selected:
            choices = {"selected": f"The {len(selected)} selected machine(s)", **choices}
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-lg"):
            ui.label("Send a message" if item_type == MESSAGE else "Run a command").classes("text-lg font-bold")
            target = ui.radio(choices, value=next(iter(choices))).mark("fleet-send-target")
            form = MessageForm() if item_type == MESSAGE else CommandForm()
            form.build()

            async def go() -> None:
                targets: dict[str, Any]
                if target.value == "selected":
                    targets = {"machine_ids": selected}
                elif view.is_filtered:
                    ids = await run_in_threadpool(self._matching_ids, view)
                    if not ids:
                        ui.notify("No machine matches the filter.", type="warning")
                        return
                    targets = {"machine_ids": ids}
                else:
                    targets = {"all": True}
                if await send(self.services, form, targets):
                    dialog.delete()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.delete).props("flat")
                ui.button("Send", icon="send", on_click=go).props("unelevated").mark("fleet-send-go")
        dialog.on("hide", dialog.delete)
        dialog.open()
