"""Recent messages and commands with their progress, cancel (admins), and one item's deliveries.

/messages lists the organisation's latest items of each enabled feature; /messages/item?type=
message|command&id=... shows one item and each machine's delivery. Both are absent (404) when
their flags are off, and the navigation does not offer them.
"""

from __future__ import annotations

import time
from typing import Any

from nicegui import app, ui
from starlette.concurrency import run_in_threadpool

from admin.services.context import AppServices
from admin.services.errors import NotFound
from admin.services.messaging import COMMAND, MESSAGE
from admin.ui import auth, theme
from admin.ui.actor import ui_actor
from admin.ui.components.deliveries import KIND_LABELS, SEVERITY_COLOURS, output_box, progress_text, state_badge
from admin.ui.components.fleet_view import machine_href
from admin.ui.components.format import exact_time, relative_time, zone
from admin.ui.guard import signed_in_page

LISTED = 25
DRILL_DOWN_ROWS = 500
REFRESH_SECONDS = 3.0
PATH = "/messages"
ITEM_PATH = "/messages/item"


def item_href(item_type: str, item_id: str) -> str:
    return f"{ITEM_PATH}?type={item_type}&id={item_id}"


def item_label(item: dict[str, Any], item_type: str) -> str:
    if item_type == MESSAGE:
        return item["title"]
    label = KIND_LABELS[item["kind"]]
    if item["kind"] == "run_script":
        label = f"{label}: {' '.join([item['args']['name'], *item['args']['args']])}"
    return label


async def cancel(services: AppServices, item_type: str, item_id: str) -> None:
    """Admins only, checked now (the role may have changed since the page loaded)."""
    user = await auth.current_user(services)
    if user is None or not user.is_admin:
        ui.notify("Only an admin can cancel.", type="negative")
        return
    try:
        n = await run_in_threadpool(
            services.messaging.cancel, org_id=user.org_id, item_type=item_type, item_id=item_id, actor=ui_actor(user)
        )
    except NotFound:
        ui.notify("It is gone.", type="warning")
        return
    ui.notify(f"Cancelled {n} {'delivery' if n == 1 else 'deliveries'} not yet delivered.", type="positive")


class RecentItems:
    """One feature's latest items, redrawn by a timer when they change."""

    def __init__(self, services: AppServices, user: auth.SignedInUser, item_type: str) -> None:
        self.services = services
        self.user = user
        self.item_type = item_type
        self._shown: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        return self.services.messaging.list_items(org_id=self.user.org_id, item_type=self.item_type, limit=LISTED)

    async def refresh(self) -> None:
        listing = await run_in_threadpool(self._load)
        if listing != self._shown:
            self._shown = listing
            self.draw.refresh(listing)

    @ui.refreshable_method
    def draw(self, listing: dict[str, Any] | None) -> None:
        if listing is None:
            return
        if not listing["data"]:
            ui.label(f"No {self.item_type}s yet.").classes("text-grey-7")
            return
        now = time.time()
        for item in listing["data"]:
            item_id = item[f"{self.item_type}_id"]
            with ui.row().classes("w-full items-center gap-2 py-1 border-b").mark(f"{self.item_type}-row"):
                with ui.column().classes("gap-0 grow min-w-0"):
                    with ui.row().classes("items-center gap-2 no-wrap"):
                        if self.item_type == MESSAGE:
                            ui.badge(item["severity"], color=SEVERITY_COLOURS[item["severity"]]).props("outline")
                        ui.link(item_label(item, self.item_type), item_href(self.item_type, item_id)).classes(
                            "font-medium break-all"
                        ).mark("item-link")
                    ui.label(progress_text(item, self.item_type)).classes("text-sm").mark("item-progress")
                    target = "all machines" if item["all"] else f"{item['progress']['total']} machine(s)"
                    ui.label(f"{relative_time(item['created'], now)} to {target} by {item['created_by']}").classes(
                        "text-xs text-grey-7"
                    )
                if self.user.is_admin and item["counts"].get("queued"):

                    async def go(item_id: str = item_id) -> None:
                        await cancel(self.services, self.item_type, item_id)
                        await self.refresh()

                    ui.button("Cancel", icon="block", on_click=go).props("flat dense color=negative").mark(
                        "cancel-item"
                    )


class ItemScreen:
    """One item and its deliveries, by machine id (the first DRILL_DOWN_ROWS)."""

    def __init__(self, services: AppServices, user: auth.SignedInUser, item_type: str, item_id: str) -> None:
        self.services = services
        self.user = user
        self.item_type = item_type
        self.item_id = item_id
        self.tz = zone(app.storage.user.get("tz"))
        self._shown: tuple[dict[str, Any], list[dict[str, Any]]] | None = None

    def _load(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        messaging = self.services.messaging
        args = {"org_id": self.user.org_id, "item_type": self.item_type, "item_id": self.item_id}
        try:
            return messaging.item(**args, with_deliveries=False), messaging.item_deliveries(
                **args, limit=DRILL_DOWN_ROWS
            )
        except NotFound:
            return None

    async def refresh(self) -> None:
        loaded = await run_in_threadpool(self._load)
        if loaded != self._shown:
            self._shown = loaded
            self.draw.refresh(loaded)

    @ui.refreshable_method
    def draw(self, loaded: tuple[dict[str, Any], list[dict[str, Any]]] | None) -> None:
        if loaded is None:
            theme.notice(f"No such {self.item_type} in your organisation.", icon="search_off", marker="item-missing")
            return
        item, deliveries = loaded
        now = time.time()
        with theme.section(item_label(item, self.item_type)).mark("item-card"):
            if self.item_type == MESSAGE:
                ui.badge(item["severity"], color=SEVERITY_COLOURS[item["severity"]]).props("outline")
                if item["body"]:
                    ui.label(item["body"]).classes("whitespace-pre-wrap break-all").mark("item-body")
            else:
                ui.label(f"Timeout {item['timeout']} s").classes("text-sm text-grey-7")
            ui.label(progress_text(item, self.item_type)).classes("font-medium").mark("item-progress")
            ui.label(
                f"Sent {exact_time(item['created'], self.tz)} by {item['created_by']}; "
                f"expires {exact_time(item['expires'], self.tz)}"
            ).classes("text-xs text-grey-7")
            if self.user.is_admin and item["counts"].get("queued"):

                async def go() -> None:
                    await cancel(self.services, self.item_type, self.item_id)
                    await self.refresh()

                ui.button("Cancel what is not delivered yet", icon="block", on_click=go).props(
                    "outline color=negative"
                ).mark("cancel-item")
        with theme.section("Deliveries").mark("deliveries-card"):
            total = item["progress"]["total"]
            if total > len(deliveries):
                ui.label(f"The first {len(deliveries)} of {total} machines, by machine id.").classes("text-xs")
            for d in deliveries:
                with ui.column().classes("w-full gap-0 py-1 border-b").mark("delivery-row"):
                    with ui.row().classes("w-full items-center gap-2 no-wrap"):
                        ui.link(d["machine_id"], machine_href(d["machine_id"])).classes("break-all grow").mark(
                            "delivery-machine"
                        )
                        state_badge(d["state"])
                    ui.label(f"updated {relative_time(d['updated'], now)}").classes("text-xs text-grey-7").tooltip(
                        exact_time(d["updated"], self.tz)
                    )
                    if self.item_type == COMMAND and (d["output"] or d["exit_code"] is not None):
                        code = "" if d["exit_code"] is None else f" (exit code {d['exit_code']})"
                        with ui.expansion(f"Output{code}").classes("w-full").props("dense").mark("output-toggle"):
                            output_box(d["output"], d["output_cut"])


def register(services: AppServices) -> None:
    def available() -> bool:
        return bool(services.messaging.enabled_types())

    theme.add_nav_link("Messages", PATH, "nav-messages", available)

    @signed_in_page(services, PATH, "Messages and commands", available=available)
    async def messages_page(user: auth.SignedInUser) -> None:
        ui.label("Messages and commands").classes("text-2xl font-bold")
        lists = []
        for item_type in services.messaging.enabled_types():
            title = "Messages" if item_type == MESSAGE else "Commands"
            with theme.section(f"Recent {title.lower()}").mark(f"recent-{item_type}s"):
                recent = RecentItems(services, user, item_type)
                recent.draw(None)
                lists.append(recent)
        for recent in lists:
            await recent.refresh()

        async def tick() -> None:
            if await auth.still_signed_in(services):
                for recent in lists:
                    await recent.refresh()

        ui.timer(REFRESH_SECONDS, tick, immediate=False)

    @signed_in_page(services, ITEM_PATH, "Message or command", available=available)
    async def item_page(user: auth.SignedInUser, type: str = "", id: str = "") -> None:  # noqa: A002 - the query's
        ui.link("← Messages and commands", PATH).classes("text-sm")
        if type not in (MESSAGE, COMMAND) or not services.messaging.enabled(type):
            theme.notice("No such message or command.", icon="search_off", marker="item-missing")
            return
        screen = ItemScreen(services, user, type, id[:64])
        screen.draw(None)
        await screen.refresh()

        async def tick() -> None:
            if await auth.still_signed_in(services):
                await screen.refresh()

        ui.timer(REFRESH_SECONDS, tick, immediate=False)
