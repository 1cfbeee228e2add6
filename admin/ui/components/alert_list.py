"""What fires now, as rows: the alerts page, the machine page's panel and the bell's menu share it.

Every text is a plain label (never HTML): rule names and machine ids are whatever people typed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import background_tasks, ui

from admin.ui.components.fleet_view import machine_href
from admin.ui.components.format import relative_time

log = logging.getLogger(__name__)
SEVERITY_COLOURS = {"critical": "negative", "warning": "warning"}
STATE_LABELS = {"firing": "firing", "silenced": "silenced", "unknown": "unknown (machine offline)"}
ACK_CHOICES = {"1 hour": 3600, "4 hours": 4 * 3600, "1 day": 86400, "1 week": 7 * 86400}


def every(seconds: float, update: Callable[[], Awaitable[None]]) -> None:
    """Calls `update` now and every `seconds` while this page's client lives. A task, not a
    ui.timer: the page's own timers stay the only timer elements on it."""
    client = ui.context.client

    async def loop() -> None:
        while not client.is_deleted:
            try:
                await update()
            except Exception:  # a failed refresh must not end the refreshing
                log.exception("alerts refresh failed")
            await asyncio.sleep(seconds)

    background_tasks.create(loop(), name="alerts-refresh")


def value_text(alert: dict[str, Any]) -> str:
    return "" if alert.get("value") is None else f"{alert['value']:.1f} %"


def alert_rows(
    alerts: list[dict[str, Any]],
    *,
    show_machine: bool = True,
    acknowledge: Callable[[dict[str, Any], int], Awaitable[None]] | None = None,
) -> None:
    """One row per alert; with `acknowledge` (admins), a button to acknowledge it for a while."""
    if not alerts:
        ui.label("Nothing fires now.").classes("text-grey-7").mark("no-alerts")
        return
    now = time.time()
    for alert in alerts:
        with ui.row().classes("w-full items-center gap-2 py-1 border-b").mark("alert-row"):
            ui.badge(alert["severity"], color=SEVERITY_COLOURS.get(alert["severity"], "grey")).props("outline")
            with ui.column().classes("gap-0 grow min-w-0"):
                with ui.row().classes("items-center gap-2"):
                    ui.label(alert["rule"]).classes("font-medium break-all").mark("alert-rule")
                    if show_machine:
                        ui.link(alert["machine_id"], machine_href(alert["machine_id"])).classes("break-all").mark(
                            "alert-machine"
                        )
                details = (
                    f"{STATE_LABELS.get(alert['state'], alert['state'])} since {relative_time(alert['since'], now)}"
                )
                if value_text(alert):
                    details += f" · {value_text(alert)}"
                ui.label(details).classes("text-sm text-grey-8").mark("alert-state")
                if alert.get("acknowledged"):
                    left = max(1, round((alert["acked_until"] - now) / 60))
                    ui.label(f"acknowledged by {alert['acked_by']} ({left} min left)").classes(
                        "text-xs text-grey-7"
                    ).mark("alert-acked")
            if acknowledge is not None:
                with ui.button("Acknowledge", icon="check").props("flat dense").mark("ack"):
                    with ui.menu():
                        for label, seconds in ACK_CHOICES.items():

                            async def ack(alert: dict[str, Any] = alert, seconds: int = seconds) -> None:
                                await acknowledge(alert, seconds)

                            ui.menu_item(f"for {label}", on_click=ack).mark(f"ack-{seconds}")
