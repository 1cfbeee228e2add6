"""One machine: status, health with its reasons, latest report, OS metadata, history charts, removal.

Addressed as /machine?id=<percent-encoded machine id>, since an id may hold any printable
character, '/' included. Everything about the machine is shown with labels, i.e. as text.
"""

from __future__ import annotations

import time

from nicegui import app, ui
from starlette.concurrency import run_in_threadpool

from admin.services.context import AppServices
from admin.services.errors import NotFound
from admin.services.fleet import with_unknown_sensors
from admin.services.history import RangeName
from admin.services.public import HistoryRangeOut, MachineOut
from admin.ui import auth, theme
from admin.ui.actor import ui_actor
from admin.ui.components import history_chart
from admin.ui.components.fleet_view import shown_status
from admin.ui.components.format import duration, exact_time, gib, relative_time, sensor, text, zone
from admin.ui.components.machine_deliveries import DeliveryPanel, delivery_panels
from admin.ui.guard import signed_in_page
from admin.ui.pages.alerts import machine_alerts_panel
from common.health import compute_health

SYSTEM_FIELDS = (
    ("hostname", "Hostname"),
    ("os", "OS"),
    ("os_version", "OS version"),
    ("platform", "Platform"),
    ("architecture", "Architecture"),
    ("python_version", "Python"),
    ("agent_version", "Agent version"),
    ("hardware_id", "Hardware id"),
)
# Report fields shown in their own places; any other (newer agents may send more) goes under "More".
SHOWN_REPORT_FIELDS = {
    "cpu_percent",
    "ram_percent",
    "disk_percent",
    "ram_used_gib",
    "ram_total_gib",
    "disk_used_gib",
    "disk_total_gib",
    "uptime_seconds",
    "uptime_hms",
    "timestamp",
    "health",
    "system",
}
DELIVERY_REFRESH_SECONDS = 2.0


def _pair(name: str, value: object, marker: str | None = None) -> None:
    with ui.row().classes("w-full justify-between gap-2 no-wrap"):
        ui.label(name).classes("text-grey-7 shrink-0")
        label = ui.label(text(value)).classes("text-right break-all")
        if marker:
            label.mark(marker)


class MachineScreen:
    def __init__(self, services: AppServices, user: auth.SignedInUser, machine_id: str) -> None:
        self.services = services
        self.user = user
        self.machine_id = machine_id
        self.tz = zone(app.storage.user.get("tz"))
        self.span: RangeName = "day"
        self.panels: list[DeliveryPanel] = []

    def _fetch(self) -> MachineOut | None:
        try:
            return self.services.fleet.machine(org_id=self.user.org_id, machine_id=self.machine_id)
        except NotFound:
            return None

    async def fetch(self) -> MachineOut | None:
        return await run_in_threadpool(self._fetch)

    # -- details (redrawn on every refresh) ----------------------------------------------------
    @ui.refreshable_method
    def details(self, machine: MachineOut | None) -> None:
        if machine is None:
            theme.notice(
                "This machine is not in your organisation's fleet (removed, expired or never seen).",
                icon="search_off",
                marker="machine-missing",
            )
            ui.link("Back to the fleet", "/")
            return
        now = time.time()
        report = machine.report
        with ui.row().classes("w-full items-center gap-2"):
            ui.label(machine.machine_id).classes("text-2xl font-bold break-all").mark("machine-id")
            status = shown_status(machine)
            ui.badge(status, color=theme.connection_colour(status)).props("outline").mark("machine-status")
        last_seen = ui.label(f"Last seen {relative_time(machine.last_seen, now)}").classes("text-sm text-grey-7")
        last_seen.tooltip(exact_time(machine.last_seen, self.tz))
        with ui.element("div").classes("grid grid-cols-1 md:grid-cols-2 gap-4 w-full"):
            self._health(report)
            self._report(machine, report)

    @ui.refreshable_method
    def system(self, machine: MachineOut | None) -> None:
        if machine is not None:
            self._system(machine, machine.system)

    def _health(self, report: dict) -> None:
        with theme.section("Health").mark("health-card"):
            if not report:
                ui.label("No report yet: this machine is known from heartbeats only.").classes("text-grey-7")
                return
            # An unreadable sensor is null (an earlier agent's: 0 named in `unavailable`): unknown.
            report = with_unknown_sensors(report)
            health = compute_health(report["cpu_percent"], report["ram_percent"], report["disk_percent"])
            with ui.row().classes("items-center gap-3"):
                ui.label("–" if health.score is None else f"{health.score}").classes("text-4xl font-bold").mark(
                    "health-score"
                )
                ui.label("/ 100").classes("text-grey-7")
                ui.badge(health.status or "unknown", color=theme.health_colour(health.status)).mark("health-status")
            if health.reasons:
                for reason in health.reasons:
                    with ui.row().classes("items-center gap-1 no-wrap"):
                        ui.icon("warning", size="xs", color=theme.health_colour(health.status))
                        ui.label(reason).mark("health-reason")
            else:
                ui.label("Every metric is within its comfortable range.").classes("text-grey-7")

    def _report(self, machine: MachineOut, report: dict) -> None:
        with theme.section("Latest report").mark("report-card"):
            if not report:
                ui.label("No report yet.").classes("text-grey-7")
                return
            for key, label in (("cpu_percent", "CPU"), ("ram_percent", "RAM"), ("disk_percent", "Disk")):
                with ui.row().classes("w-full items-center gap-2 no-wrap"):
                    ui.label(label).classes("w-10 text-grey-7")
                    shown = sensor(report, key)
                    if shown == "unknown":  # not read: no bar at all, rather than an empty one
                        ui.label("could not be read").classes("grow text-grey-7 text-sm")
                    else:
                        ui.linear_progress(value=report[key] / 100, show_value=False, size="8px").classes("grow")
                    ui.label(shown).classes("w-16 text-right").mark(f"report-{key}")
            _pair("Memory", gib(report.get("ram_used_gib"), report.get("ram_total_gib")))
            _pair("Disk space", gib(report.get("disk_used_gib"), report.get("disk_total_gib")))
            uptime = report.get("uptime_seconds")
            _pair("Uptime", duration(uptime) if isinstance(uptime, (int, float)) else report.get("uptime_hms"))
            _pair("Received", exact_time(machine.ts, self.tz))
            _pair("Agent's clock", report.get("timestamp"))
            for key, value in sorted(report.items()):
                if key not in SHOWN_REPORT_FIELDS and not isinstance(value, (dict, list)):
                    _pair(key, value)

    def _system(self, machine: MachineOut, system: dict) -> None:
        with theme.section("System").mark("system-card"):
            for key, label in SYSTEM_FIELDS:
                value = getattr(machine, key) if key in ("hostname", "os", "hardware_id") else None
                _pair(label, system.get(key) if system.get(key) is not None else value, f"system-{key}")
            _pair("Last heartbeat", exact_time(machine.last_ping, self.tz) if machine.last_ping else None)

    # -- history ---------------------------------------------------------------------------------
    def history_card(self) -> None:
        with theme.section("History").classes("w-full").mark("history-card"):
            toggle = ui.toggle(
                {name: name.capitalize() for name in history_chart.RANGE_NAMES},
                value=self.span,
                on_change=lambda e: self.show_history(e.value),
            )
            toggle.props("dense no-caps").mark("history-span")
            now = time.time()
            self.chart = ui.echart(history_chart.chart_options([], span_seconds=3600, now=now)).classes("w-full h-64")
            self.chart.mark("history-chart")
            self.samples = ui.label().classes("text-xs text-grey-7").mark("history-samples")

    def _history(self, span: RangeName) -> HistoryRangeOut | None:
        try:
            return self.services.history.chart(org_id=self.user.org_id, machine_id=self.machine_id, range_name=span)
        except NotFound:
            return None

    async def show_history(self, span: str) -> None:
        self.span = _range(span)
        loaded = await run_in_threadpool(self._history, self.span)
        if loaded is None:
            return
        points = history_chart.points(loaded.buckets, width=loaded.bucket_seconds)
        options = history_chart.chart_options(points, span_seconds=loaded.until - loaded.since, now=loaded.until)
        self.chart.options.clear()
        self.chart.options.update(options)
        self.chart.update()
        count = sum(b.samples for b in loaded.buckets)
        noun = "sample" if count == 1 else "samples"
        self.samples.text = (
            f"{count:,} {noun} in the last {self.span}; each point is the mean of "
            f"{duration(loaded.bucket_seconds)}, the band its min–max (from {history_chart.TIER_WORDS[loaded.tier]})"
        )

    async def refresh(self) -> None:
        if not await auth.still_signed_in(self.services):
            return
        machine = await self.fetch()
        self.details.refresh(machine)
        self.system.refresh(machine)
        await self.show_history(self.span)

    # -- feature-flagged and admin sections ------------------------------------------------------
    async def delivery_panels(self) -> None:
        self.panels = delivery_panels(self.services, self.user, self.machine_id, self.tz)
        await self.refresh_panels()

    async def refresh_panels(self) -> None:
        for panel in self.panels:
            await panel.refresh()

    def danger_zone(self) -> None:
        with theme.section("Remove machine").mark("delete-card"):
            ui.label("Removes the machine and its history. It comes back if its agent reports again.").classes(
                "text-sm text-grey-7"
            )
            ui.button(
                "Remove machine",
                icon="delete",
                color="negative",
                on_click=lambda: theme.confirm(
                    "Remove this machine and its history?",
                    "Remove",
                    self.delete,
                    detail=self.machine_id,
                    marker="confirm-delete",
                ),
            ).props("outline").mark("delete-machine")

    async def delete(self) -> None:
        user = await auth.current_user(self.services)  # the role may have changed since the page loaded
        if user is None or not user.is_admin:
            ui.notify("Only an admin can remove machines.", type="negative")
            return
        try:
            await run_in_threadpool(
                self.services.fleet.delete_machine, org_id=user.org_id, machine_id=self.machine_id, actor=ui_actor(user)
            )
        except NotFound:
            ui.notify("This machine was already gone.", type="warning")
        else:
            ui.notify("Machine removed.", type="positive")
        ui.navigate.to("/")


def _range(name: str) -> RangeName:
    """A range the page offers; anything else (a hand-made link) shows the day."""
    return next((known for known in history_chart.RANGE_NAMES if known == name), "day")


def register(services: AppServices) -> None:
    @signed_in_page(services, "/machine", "Machine")
    async def machine_page(user: auth.SignedInUser, id: str = "", span: str = "day") -> None:  # noqa: A002 - the query's name
        ui.link("← Fleet", "/").classes("text-sm")
        screen = MachineScreen(services, user, id)
        screen.span = _range(span)  # e.g. a link to ?span=year
        machine = await screen.fetch()
        screen.details(machine)
        if machine is None:
            return
        screen.history_card()
        await screen.show_history(screen.span)
        with ui.element("div").classes("grid grid-cols-1 md:grid-cols-2 gap-4 w-full"):
            screen.system(machine)
            with ui.column().classes("w-full gap-4"):
                start_alerts = machine_alerts_panel(services, user, id)
                await screen.delivery_panels()
                if user.is_admin:
                    screen.danger_zone()
        ui.timer(services.settings.refresh_interval_ms / 1000, screen.refresh, immediate=False)
        start_alerts()
        if screen.panels:  # deliveries change within seconds of a send: shown as they do
            ui.timer(DELIVERY_REFRESH_SECONDS, screen.refresh_panels, immediate=False)
