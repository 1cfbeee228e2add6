"""The fleet (home page): summary counts, filters and the server-side paged machine table.

A timer reloads the current view every REFRESH_INTERVAL_MS; it only replaces the table's rows and
the counts, so the user's sort, filters, page and scroll position stay as they are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace

from nicegui import app, ui
from starlette.concurrency import run_in_threadpool

from admin.services.context import AppServices
from admin.services.fleet import MachineAlerts
from admin.services.public import FleetOut
from admin.ui import auth
from admin.ui.components.fleet_send import FleetSend
from admin.ui.components.fleet_table import fleet_table
from admin.ui.components.fleet_view import ALL, HEALTH_OPTIONS, STATUS_OPTIONS, STORAGE_KEY, FleetView, to_row
from admin.ui.components.format import clock_time, duration, zone
from admin.ui.components.summary import SummaryCards
from admin.ui.guard import signed_in_page

# How long the OS filter's choices may lag behind the fleet (a new OS is rare news).
OS_NAMES_MAX_AGE_SECONDS = 30.0


@dataclass(frozen=True)
class Snapshot:
    view: FleetView  # the view actually shown (its page clamped to the last one)
    page: FleetOut
    alerts: dict[str, MachineAlerts]  # what fires on the page's machines (none: not listed)
    counts: dict
    os_names: list | None  # None: not asked for this time (see OS_NAMES_MAX_AGE_SECONDS)
    at: float


def load_snapshot(services: AppServices, org_id: int, view: FleetView, *, with_os_names: bool = True) -> Snapshot:
    """Everything one refresh shows: the page of machines, the counts, the OS names."""
    fleet = services.fleet

    def page_of(v: FleetView) -> tuple[FleetOut, dict[str, MachineAlerts]]:
        return fleet.list_fleet_with_alerts(
            org_id=org_id,
            flt=v.fleet_filter(),
            limit=v.rows_per_page,
            offset=v.offset,
            sort=v.sort_by,
            descending=v.descending,
        )

    page, alerts = page_of(view)
    if not page.data and view.page > view.last_page(page.count):  # machines left: show the last page
        view = replace(view, page=view.last_page(page.count))
        page, alerts = page_of(view)
    os_names = fleet.os_names(org_id=org_id) if with_os_names else None
    return Snapshot(view, page, alerts, fleet.summary(org_id=org_id), os_names, time.time())


class FleetScreen:
    def __init__(self, services: AppServices, user: auth.SignedInUser) -> None:
        self.services = services
        self.user = user
        self.view = FleetView.from_storage(app.storage.user.get(STORAGE_KEY))
        self.tz = zone(app.storage.user.get("tz"))
        self._generation = 0  # a slower, older load never overwrites a newer one
        self._syncing = False
        self._os_names_at = -math.inf

    # -- data (in a worker thread: the event loop also serves the API) --------------------------
    async def _load(self, generation: int, view: FleetView) -> None:
        # The OS names scan the whole fleet and rarely change: asked for now and then, not every time.
        with_os_names = time.monotonic() - self._os_names_at > OS_NAMES_MAX_AGE_SECONDS
        snapshot = await run_in_threadpool(
            load_snapshot, self.services, self.user.org_id, view, with_os_names=with_os_names
        )
        if with_os_names:
            self._os_names_at = time.monotonic()
        if generation == self._generation:
            self._show(snapshot)

    def show(self, view: FleetView) -> Awaitable[None]:
        """Make `view` the wanted one at once (the next event builds on it, even before the data
        arrives) and return the load for the event handler to await."""
        self.view = view
        self._generation += 1
        return self._load(self._generation, view)

    async def refresh(self) -> None:
        await self.show(self.view)

    async def on_timer(self) -> None:
        if await auth.still_signed_in(self.services):
            await self.refresh()

    def change(self, **values: object) -> Awaitable[None]:
        """Filters changed: back to the first page."""
        view = self.view
        for name, value in values.items():
            view = view.with_value(name, value)
        return self.show(replace(view, page=1))

    def _on_change(self, name: str):
        """A filter's on_change; ignored while the page itself sets the filter (no second reload)."""

        def handler(event):
            return None if self._syncing else self.change(**{name: event.value})

        return handler

    def pick(self, field: str | None, value: str | None) -> Awaitable[None]:
        """A summary card was clicked."""
        return self.change(**({"status": ALL, "health": ALL} if field is None else {field: value}))

    # -- drawing -------------------------------------------------------------------------------
    def build(self) -> None:
        config = self.services.settings.public_config()
        refresh_seconds = config["REFRESH_INTERVAL_MS"] / 1000
        with ui.row().classes("w-full items-baseline justify-between gap-x-4 gap-y-0"):
            ui.label("Fleet").classes("text-2xl font-bold")
            with ui.row().classes("items-center gap-1 text-xs text-grey-7"):
                ui.icon("schedule", size="xs")
                self.refreshed = ui.label().mark("last-refreshed")
        self.summary = SummaryCards(self.pick)
        with ui.row().classes("w-full items-center gap-2"):
            self.search = ui.input(
                placeholder="Search machine id or hostname", value=self.view.q, on_change=self._on_change("q")
            )
            self.search.props("dense outlined clearable debounce=400 maxlength=200").classes("grow min-w-[16rem]")
            self.search.mark("search")
            with self.search.add_slot("prepend"):
                ui.icon("search")
            with ui.row().classes("gap-2 no-wrap max-sm:w-full"):
                self.status = ui.select(STATUS_OPTIONS, value=self.view.status, on_change=self._on_change("status"))
                self.os = ui.select({ALL: "Any OS"}, value=ALL, on_change=self._on_change("os"))
                self.health = ui.select(HEALTH_OPTIONS, value=self.view.health, on_change=self._on_change("health"))
                for select, name in ((self.status, "status"), (self.os, "os"), (self.health, "health")):
                    select.props("dense outlined").classes("sm:w-36 max-sm:flex-1 min-w-0").mark(f"filter-{name}")
        self.table = fleet_table(self.view.pagination(0))
        self.table.on(
            "request", lambda e: self.show(self.view.with_pagination(e.args.get("pagination"))), ["pagination"]
        )
        self.table.mark("fleet-table")
        if self.user.is_admin and self.services.messaging.enabled_types():
            FleetSend(self.services, self.user, self.table, lambda: self.view).build()
        # Why the table is empty, in the table's own no-data slot: it replaces Quasar's generic
        # "No data available" instead of being shown beside it.
        with self.table.add_slot("no-data"):
            self.empty = ui.label().classes("text-grey-7").mark("fleet-empty")
        ui.label(
            f"Refreshes every {duration(refresh_seconds)}. A machine is offline after "
            f"{duration(config['OFFLINE_AFTER_SECONDS'])} without contact and leaves the fleet after "
            f"{duration(config['FLEET_TTL_SECONDS'])}."
        ).classes("text-xs text-grey-7").mark("fleet-settings")
        # Data attributes let a browser test read the exact settings the page runs with.
        self.table.props(f"data-refresh-ms={config['REFRESH_INTERVAL_MS']} data-ttl-s={config['FLEET_TTL_SECONDS']}")
        ui.timer(refresh_seconds, self.on_timer, immediate=False)

    def _show(self, snapshot: Snapshot) -> None:
        self.view = snapshot.view
        if app.storage.user.get(STORAGE_KEY) != self.view.as_storage():  # each write goes to disk
            app.storage.user[STORAGE_KEY] = self.view.as_storage()
        rows = [
            to_row(m, now=snapshot.at, tz=self.tz, alerts=snapshot.alerts.get(m.machine_id)) for m in snapshot.page.data
        ]
        self.table.rows = rows
        self.table.pagination = self.view.pagination(snapshot.page.count)
        self.summary.show(snapshot.counts)
        if snapshot.os_names is None:
            os_options = dict(self.os.options)
        else:
            os_options = {ALL: "Any OS", **{name: name for name in snapshot.os_names}}
        if self.view.os not in os_options:  # the filter names an OS no machine has (any more)
            os_options[self.view.os] = self.view.os
        self._syncing = True
        try:
            if os_options != self.os.options:
                self.os.set_options(os_options, value=self.view.os)
            for select, value in (
                (self.os, self.view.os),
                (self.status, self.view.status),
                (self.health, self.view.health),
            ):
                if select.value != value:
                    select.set_value(value)
        finally:
            self._syncing = False
        self.refreshed.text = f"Updated {clock_time(snapshot.at, self.tz)}"
        if snapshot.page.count:
            self.empty.text = ""
        elif self.view.is_filtered:
            self.empty.text = "No machine matches these filters."
        else:
            self.empty.text = "No machines yet: a machine appears here when its agent first reports or pings."
        self.empty.set_visibility(not snapshot.page.count)


def register(services: AppServices) -> None:
    @signed_in_page(services, "/", "Fleet")
    async def fleet_page(user: auth.SignedInUser) -> None:
        screen = FleetScreen(services, user)
        screen.build()
        await screen.refresh()
