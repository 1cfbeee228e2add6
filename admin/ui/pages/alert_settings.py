"""/alerts/rules, /alerts/channels, /alerts/silences: everyone signed in sees them; admins add,
edit (rules and channels), delete and test. Each action checks the role again on the server when it runs (`_as_admin`), so a
viewer's crafted event or an admin demoted since the page loaded changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui
from starlette.concurrency import run_in_threadpool

from admin.services.alerts import SilenceIn
from admin.services.audit import Actor
from admin.services.context import AppServices
from admin.ui import auth, theme
from admin.ui.components.alert_forms import ChannelForm, RuleForm, machine_ids
from admin.ui.components.format import relative_time
from admin.ui.guard import admin_action, signed_in_page

WEEK_HOURS = 7 * 24


async def _as_admin(services: AppServices, action: Callable[[auth.SignedInUser, Actor], Any], done: str) -> bool:
    """Runs `action(user, actor)` if the user is (still) an admin; says how it went."""
    return await admin_action(services, action, refused="Only an admin can change alerts.", done=done) is not None


class Listing:
    """A section that lists rows and redraws itself after a change."""

    def __init__(self, load: Callable[[], list[dict[str, Any]]], row: Callable[[dict[str, Any]], None]) -> None:
        self.load = load
        self.row = row

    @ui.refreshable_method
    def draw(self, rows: list[dict[str, Any]] | None) -> None:
        if not rows:
            ui.label("None yet.").classes("text-grey-7").mark("empty")
            return
        for item in rows:
            self.row(item)

    async def refresh(self) -> None:
        self.draw.refresh(await run_in_threadpool(self.load))


def _delete_button(
    services: AppServices,
    what: str,
    delete: Callable[[auth.SignedInUser, Actor], Any],
    after: Callable[[], Awaitable[None]],
) -> None:
    async def go() -> None:
        if await _as_admin(services, delete, f"{what} deleted."):
            await after()

    ui.button(icon="delete", on_click=go).props(f'flat dense round color=negative aria-label="Delete {what}"').mark(
        "delete"
    )


def _edit_button(
    services: AppServices,
    what: str,
    form: Callable[[], Any],
    save: Callable[[Any, auth.SignedInUser, Actor], Any],
    after: Callable[[], Awaitable[None]],
) -> None:
    """A button that opens `form()` in a dialog; Save runs `save(form, user, actor)` as an admin
    (checked again on the server when it runs) and closes the dialog only when it was accepted."""

    def open_dialog() -> None:
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-lg gap-2"):
            ui.label(f"Edit {what.lower()}").classes("text-lg font-bold")
            fields = form()

            async def go() -> None:
                if await _as_admin(services, lambda u, who: save(fields, u, who), f"{what} saved."):
                    dialog.delete()
                    await after()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.delete).props("flat")
                ui.button("Save", on_click=go).mark("edit-save")
        dialog.on("hide", dialog.delete)
        dialog.open()

    ui.button(icon="edit", on_click=open_dialog).props(f'flat dense round aria-label="Edit {what}"').mark("edit")


def register(services: AppServices) -> None:
    alerts = services.alerts

    @signed_in_page(services, "/alerts/rules", "Alert rules")
    async def rules_page(user: auth.SignedInUser) -> None:
        ui.link("← Alerts", "/alerts").classes("text-sm")
        channels = await run_in_threadpool(alerts.channels, org_id=user.org_id)
        names = {c["channel_id"]: c["name"] for c in channels}

        def row(rule: dict[str, Any]) -> None:
            with ui.row().classes("w-full items-center gap-2 py-1 border-b").mark("rule-row"):
                ui.badge(rule["severity"]).props("outline")
                if not rule["enabled"]:
                    ui.badge("off", color="grey").mark("rule-off")
                with ui.column().classes("gap-0 grow min-w-0"):
                    ui.label(rule["name"]).classes("font-medium break-all")
                    if rule["kind"] == "offline":
                        what = "offline"
                    else:
                        clear = rule["clear_below"] if rule["clear_below"] is not None else rule["threshold"]
                        what = f"{rule['kind']} above {rule['threshold']:g} % (clears below {clear:g} %)"
                    scope = "all machines" if rule["machine_ids"] is None else ", ".join(rule["machine_ids"])
                    sent = ", ".join(names.get(c, f"#{c}") for c in rule["channels"]) or "no channel"
                    ui.label(f"{what} for {rule['for_seconds']} s · {scope} · to {sent}").classes(
                        "text-sm text-grey-8 break-all"
                    )
                if user.is_admin:
                    _edit_button(
                        services,
                        "Rule",
                        lambda rule=rule: RuleForm(names, rule, prefix="edit-"),
                        lambda form, u, who, rid=rule["rule_id"]: alerts.update_rule(
                            org_id=u.org_id, rule_id=rid, patch=form.patch(), actor=who
                        ),
                        listing.refresh,
                    )
                    _delete_button(
                        services,
                        "Rule",
                        lambda u, who, rid=rule["rule_id"]: alerts.delete_rule(org_id=u.org_id, rule_id=rid, actor=who),
                        listing.refresh,
                    )

        listing = Listing(lambda: alerts.rules(org_id=user.org_id), row)
        with theme.section("Rules").mark("rules-card"):
            listing.draw(None)
        await listing.refresh()
        if not user.is_admin:
            return
        with theme.section("Add a rule").mark("add-rule"):
            form = RuleForm(names)

            async def add() -> None:
                def create(u: auth.SignedInUser, who: Actor) -> None:
                    alerts.create_rule(org_id=u.org_id, spec=form.new_rule(), actor=who)

                if await _as_admin(services, create, "Rule added."):
                    await listing.refresh()

            ui.button("Add rule", icon="add", on_click=add).mark("add-rule-button")

    @signed_in_page(services, "/alerts/channels", "Alert channels")
    async def channels_page(user: auth.SignedInUser) -> None:
        ui.link("← Alerts", "/alerts").classes("text-sm")

        def row(channel: dict[str, Any]) -> None:
            with ui.row().classes("w-full items-center gap-2 py-1 border-b").mark("channel-row"):
                ui.badge(channel["kind"]).props("outline")
                with ui.column().classes("gap-0 grow min-w-0"):
                    ui.label(channel["name"]).classes("font-medium break-all")
                    if channel["kind"] == "webhook":
                        where = channel["url"] + (" · signed" if channel["has_secret"] else "")
                    elif channel["kind"] == "email":
                        where = ", ".join(channel["to"])
                    else:
                        where = ", ".join(channel["services"])
                    ui.label(where).classes("text-sm text-grey-8 break-all").mark("channel-where")
                if user.is_admin:

                    async def test(cid: int = channel["channel_id"]) -> None:
                        result: dict[str, Any] = {}

                        def send(u: auth.SignedInUser, _who: Actor) -> None:
                            result.update(
                                alerts.test_channel(org_id=u.org_id, channel_id=cid, client=services.notifier.client)
                            )

                        if await _as_admin(services, send, "Test sent.") and not result.get("ok"):
                            ui.notify(f"The channel refused it: {result.get('error')}", type="warning")

                    ui.button("Send test", icon="send", on_click=test).props("flat dense").mark("test-channel")
                    _edit_button(
                        services,
                        "Channel",
                        lambda channel=channel: ChannelForm(channel, prefix="edit-"),
                        lambda form, u, who, cid=channel["channel_id"]: alerts.update_channel(
                            org_id=u.org_id, channel_id=cid, patch=form.patch(), actor=who
                        ),
                        listing.refresh,
                    )
                    _delete_button(
                        services,
                        "Channel",
                        lambda u, who, cid=channel["channel_id"]: alerts.delete_channel(
                            org_id=u.org_id, channel_id=cid, actor=who
                        ),
                        listing.refresh,
                    )

        listing = Listing(lambda: alerts.channels(org_id=user.org_id), row)
        with theme.section("Channels").mark("channels-card"):
            ui.label("Secrets and Apprise URLs are never shown again after saving.").classes("text-xs text-grey-7")
            listing.draw(None)
        await listing.refresh()
        if not user.is_admin:
            return
        with theme.section("Add a channel").mark("add-channel"):
            form = ChannelForm()

            async def add() -> None:
                def create(u: auth.SignedInUser, who: Actor) -> None:
                    alerts.create_channel(org_id=u.org_id, spec=form.new_channel(), actor=who)

                if await _as_admin(services, create, "Channel added."):
                    form.secret.value = ""
                    form.target.value = ""
                    await listing.refresh()

            ui.button("Add channel", icon="add", on_click=add).mark("add-channel-button")

    @signed_in_page(services, "/alerts/silences", "Silences")
    async def silences_page(user: auth.SignedInUser) -> None:
        ui.link("← Alerts", "/alerts").classes("text-sm")
        now = time.time()

        def row(silence: dict[str, Any]) -> None:
            with ui.row().classes("w-full items-center gap-2 py-1 border-b").mark("silence-row"):
                ui.badge("active" if silence["active"] else ("over" if silence["over"] else "waiting")).props("outline")
                with ui.column().classes("gap-0 grow min-w-0"):
                    scope = "all machines" if silence["all"] else ", ".join(silence["machine_ids"])
                    hours = (silence["ends"] - silence["starts"]) / 3600
                    repeat = "every week, " if silence["weekly"] else ""
                    ui.label(f"{scope}: {repeat}{hours:g} h from {relative_time(silence['starts'], now)}").classes(
                        "break-all"
                    )
                    if silence["comment"]:
                        ui.label(silence["comment"]).classes("text-sm text-grey-8 break-all")
                if user.is_admin:
                    _delete_button(
                        services,
                        "Silence",
                        lambda u, who, sid=silence["silence_id"]: alerts.delete_silence(
                            org_id=u.org_id, silence_id=sid, actor=who
                        ),
                        listing.refresh,
                    )

        listing = Listing(lambda: alerts.silences(org_id=user.org_id), row)
        with theme.section("Silences").mark("silences-card"):
            ui.label(
                "During a silence nothing is sent for its machines; at its end, what still fires is sent once."
            ).classes("text-xs text-grey-7")
            listing.draw(None)
        await listing.refresh()
        if not user.is_admin:
            return
        with theme.section("Add a silence").mark("add-silence"):
            machines = ui.textarea("Machines (one id per line; empty: all)").mark("silence-machines")
            starts_in = ui.number("Starts in (hours from now)", value=0, min=0).mark("silence-starts")
            hours = ui.number("Lasts (hours)", value=1, min=0.1, max=WEEK_HOURS * 4).mark("silence-hours")
            weekly = ui.checkbox("Every week at the same time").mark("silence-weekly")
            comment = ui.input("Comment").mark("silence-comment")

            async def add() -> None:
                def create(u: auth.SignedInUser, who: Actor) -> None:
                    ids = machine_ids(machines.value or "")
                    starts = time.time() + float(starts_in.value or 0) * 3600
                    spec = SilenceIn(
                        machine_ids=ids,
                        all=ids is None,
                        starts=starts,
                        ends=starts + float(hours.value or 0) * 3600,
                        weekly=bool(weekly.value),
                        comment=comment.value or "",
                    )
                    alerts.create_silence(org_id=u.org_id, spec=spec, actor=who)

                if await _as_admin(services, create, "Silence added."):
                    await listing.refresh()

            ui.button("Add silence", icon="add", on_click=add).mark("add-silence-button")
