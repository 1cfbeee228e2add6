"""/alerts: what fires now (admins acknowledge with an expiry) and the history; the bell in the
header. Everyone signed in sees them; every action checks the role again on the server when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import app, ui
from starlette.concurrency import run_in_threadpool

from admin.services.alerts import AckIn
from admin.services.context import AppServices
from admin.services.errors import NotFound
from admin.ui import auth, theme
from admin.ui.components.alert_list import SEVERITY_COLOURS, alert_rows, every, value_text
from admin.ui.components.fleet_view import machine_href
from admin.ui.components.format import exact_time, zone
from admin.ui.guard import signed_in_page

PATH = "/alerts"
HISTORY_ROWS = 50
REFRESH_SECONDS = 5.0
BELL_REFRESH_SECONDS = 10.0


async def acknowledge(services: AppServices, alert: dict[str, Any], seconds: int) -> None:
    """Admins only, checked now (the role may have changed since the page loaded)."""
    user = await auth.current_user(services)
    if user is None or not user.is_admin:
        ui.notify("Only an admin can acknowledge.", type="negative")
        return
    spec = AckIn(rule_id=alert["rule_id"], machine_id=alert["machine_id"], expires_in=seconds)
    try:
        await run_in_threadpool(services.alerts.acknowledge, org_id=user.org_id, spec=spec, by=user.email)
    except NotFound:
        ui.notify("That alert is over.", type="warning")
        return
    ui.notify("Acknowledged.", type="positive")


def bell(services: AppServices, user: auth.SignedInUser) -> Callable[[], None]:
    """A bell in the header: how many alerts fire now, and which (a menu); refreshed by a timer."""
    with ui.button(icon="notifications").props('flat round dense color=white aria-label="Alerts"').mark("bell"):
        badge = ui.badge("", color="negative").props("floating").mark("bell-count")
        with ui.menu().classes("max-w-sm") as menu:
            listing = ui.column().classes("p-2 gap-1")

    async def update() -> None:
        alerts = await run_in_threadpool(services.alerts.firing, org_id=user.org_id)
        firing = [a for a in alerts if a["state"] == "firing"]
        badge.set_text(str(len(firing)))
        badge.set_visibility(bool(firing))
        listing.clear()
        with listing:
            if not alerts:
                ui.label("Nothing fires now.").classes("text-grey-7")
            for alert in alerts[:8]:
                with ui.row().classes("items-center gap-1 no-wrap"):
                    ui.badge(alert["severity"], color=SEVERITY_COLOURS.get(alert["severity"], "grey")).props("outline")
                    ui.label(f"{alert['rule']} · {alert['machine_id']} ({alert['state']})").classes("text-sm break-all")
            ui.link("All alerts", PATH).classes("text-sm").mark("bell-all")

    menu.on("show", update)

    def start() -> None:  # once the page is built (theme.frame calls it)
        every(BELL_REFRESH_SECONDS, update)

    return start


class AlertsScreen:
    def __init__(self, services: AppServices, user: auth.SignedInUser) -> None:
        self.services = services
        self.user = user
        self.tz = zone(app.storage.user.get("tz"))
        self._shown: tuple[Any, Any] | None = None

    def _load(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        alerts = self.services.alerts
        return (
            alerts.firing(org_id=self.user.org_id),
            alerts.history(org_id=self.user.org_id, machine_id=None, limit=HISTORY_ROWS, offset=0),
        )

    async def refresh(self) -> None:
        loaded = await run_in_threadpool(self._load)
        if loaded != self._shown:
            self._shown = loaded
            self.draw.refresh(loaded)

    async def _ack(self, alert: dict[str, Any], seconds: int) -> None:
        await acknowledge(self.services, alert, seconds)
        await self.refresh()

    @ui.refreshable_method
    def draw(self, loaded: tuple[list[dict[str, Any]], dict[str, Any]] | None) -> None:
        if loaded is None:
            return
        firing, history = loaded
        with theme.section("Firing now").mark("firing-card"):
            alert_rows(firing, acknowledge=self._ack if self.user.is_admin else None)
        with theme.section(f"History ({history['count']})").mark("history-card"):
            if not history["data"]:
                ui.label("Nothing has fired yet.").classes("text-grey-7")
            for event in history["data"]:
                with ui.row().classes("w-full items-center gap-2 py-1 border-b").mark("history-row"):
                    colour = (
                        SEVERITY_COLOURS.get(event["severity"], "grey") if event["event"] == "firing" else "positive"
                    )
                    ui.badge(event["event"], color=colour).props("outline")
                    ui.label(event["rule"]).classes("font-medium break-all")
                    ui.link(event["machine_id"], machine_href(event["machine_id"])).classes("break-all")
                    ui.label(value_text(event)).classes("text-sm")
                    ui.space()
                    sent = [d["state"] for d in event["deliveries"]]
                    told = f"{sent.count('sent')}/{len(sent)} sent" if sent else "no channel"
                    ui.label(f"{exact_time(event['at'], self.tz)} · {told}").classes("text-xs text-grey-7")


def register(services: AppServices) -> None:
    theme.add_nav_link("Alerts", PATH, "nav-alerts", lambda: True)
    theme.add_header_item("alerts-bell", lambda user: bell(services, user))

    @signed_in_page(services, PATH, "Alerts")
    async def alerts_page(user: auth.SignedInUser) -> None:
        with ui.row().classes("gap-4 text-sm"):
            for label, path in (
                ("Rules", "/alerts/rules"),
                ("Channels", "/alerts/channels"),
                ("Silences", "/alerts/silences"),
            ):
                ui.link(label, path).mark(f"link-{label.lower()}")
        screen = AlertsScreen(services, user)
        screen.draw(None)
        await screen.refresh()
        ui.timer(REFRESH_SECONDS, screen.refresh, immediate=False)


def machine_alerts_panel(services: AppServices, user: auth.SignedInUser, machine_id: str) -> Callable[[], None]:
    """The machine page's panel: what fires now on this machine. Returns what starts its refresh,
    for the page to call once it is built."""
    with theme.section("Alerts").mark("machine-alerts"):
        holder = ui.column().classes("w-full gap-0")

    async def update() -> None:
        alerts = await run_in_threadpool(services.alerts.firing, org_id=user.org_id, machine_id=machine_id)
        holder.clear()
        with holder:
            alert_rows(alerts, show_machine=False)

    def start() -> None:
        every(REFRESH_SECONDS, update)

    return start
