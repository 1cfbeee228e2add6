"""Install the agent (admins): make an install link, copy its command per OS, see and revoke live links.

A link's command is shown once, when it is made (the server keeps only a hash of its code, as it
does for keys). Every action re-reads the signed-in user first: an admin demoted a second ago
cannot make or revoke a link from a page loaded before.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from nicegui import app, ui
from starlette.concurrency import run_in_threadpool

from admin.services.audit import Actor
from admin.services.context import AppServices
from admin.services.install_links import DEFAULT_USES, MAX_USES, CreatedLink, LinkInfo
from admin.ui import auth, theme
from admin.ui.components.copy_text import copy_text
from admin.ui.components.format import exact_time, zone
from admin.ui.guard import admin_action, signed_in_page

PATH = "/install-agent"
LIFETIMES = {3600: "1 hour", 86400: "24 hours", 7 * 86400: "7 days", 30 * 86400: "30 days"}
# (tab name, the command's key, where to paste it, what happens next)
SYSTEMS = (
    (
        "Linux",
        "linux",
        "In a terminal (it asks for the administrator's password through sudo):",
        "Debian and Ubuntu get the .deb through apt; other distributions a virtual environment under "
        "/opt/dashfleet-agent-venv with a systemd service (servers) or a sign-in entry with a tray icon "
        "(desktops). The agent enrols with this server and appears on the fleet page within a minute.",
    ),
    (
        "macOS",
        "macos",
        "In Terminal (it asks for the administrator's password through sudo):",
        "The DashFleet package when this server has one, else the agent in a virtual environment with a "
        "launch agent; it starts for the signed-in user with its menu-bar icon, enrols, and appears on the "
        "fleet page within a minute.",
    ),
    (
        "Windows",
        "windows",
        "In PowerShell opened with Run as administrator:",
        "The DashFleet setup runs silently; the agent starts now and at every sign-in with its tray icon, "
        "enrols, and appears on the fleet page within a minute.",
    ),
)


class InstallScreen:
    def __init__(self, services: AppServices, user: auth.SignedInUser, request_base: str) -> None:
        self.services = services
        self.user = user
        self.request_base = request_base
        self.tz = zone(app.storage.user.get("tz"))

    async def _as_admin(self, action: Callable[[int, Actor], object]) -> object | None:
        """Runs an action for the organisation if the user is (still) an admin; None when refused."""
        ran = await admin_action(
            self.services,
            lambda user, actor: action(user.org_id, actor),
            refused="Only an admin can make or revoke install links.",
        )
        return None if ran is None else ran.value

    # -- a new link ----------------------------------------------------------------------------------
    def create_section(self) -> None:
        with theme.section("Install the agent").mark("install-section"):
            ui.label(
                "Make an install link, then paste its command on each workstation: it downloads this "
                "server's own agent, checks it, installs it and enrols the machine with a key of its own."
            ).classes("text-sm")
            with ui.row().classes("items-center gap-2"):
                lifetime = (
                    ui.select(LIFETIMES, value=86400, label="Expires after")
                    .props("dense outlined")
                    .classes("w-36")
                    .mark("link-lifetime")
                )
                uses = (
                    ui.number("Uses", value=DEFAULT_USES, min=1, max=MAX_USES, step=1, precision=0)
                    .props("dense outlined")
                    .classes("w-28")
                    .mark("link-uses")
                )
                ui.button(
                    "Create install link", icon="add_link", on_click=lambda: self.create(lifetime.value, uses.value)
                ).mark("create-link")
            self.new_link = ui.column().classes("w-full gap-2").mark("new-link")

    async def create(self, lifetime: int, uses: float | None) -> None:
        if uses is None or uses != int(uses):
            ui.notify(f"Uses must be a whole number from 1 to {MAX_USES}.", type="negative")
            return
        created = await self._as_admin(
            lambda org_id, email: self.services.install_links.create(
                org_id=org_id, actor=email, expires_in=int(lifetime), uses=int(uses), request_base=self.request_base
            )
        )
        if not isinstance(created, CreatedLink):
            return
        self.show_new_link(created)
        await self.show_links()
        ui.notify(f"Install link #{created.link_id} made.", type="positive")

    def show_new_link(self, link: CreatedLink) -> None:
        self.new_link.clear()
        with self.new_link:
            ui.label(
                f"Link #{link.link_id}: expires {exact_time(link.expires, self.tz)}, {link.uses} uses. "
                "Copy its command now: it is shown only this once."
            ).classes("text-sm text-negative").mark("new-link-summary")
            with ui.tabs().classes("w-full").props("align=left dense") as tabs:
                tab_for = {name: ui.tab(name).mark(f"tab-{key}") for name, key, _, _ in SYSTEMS}
            with ui.tab_panels(tabs, value=tab_for["Linux"]).classes("w-full"):
                for name, key, where, next_steps in SYSTEMS:
                    with ui.tab_panel(tab_for[name]).classes("gap-2 p-1"):
                        ui.label(where).classes("text-sm text-grey-7")
                        copy_text(link.commands[key], marker=f"command-{key}")
                        ui.label(next_steps).classes("text-sm")

    # -- the organisation's links ----------------------------------------------------------------------
    async def links_section(self) -> None:
        with theme.section("Install links").mark("links-section"):
            ui.label(
                "Live links, with their expiry and the uses left. Revoking one stops it and its enrol key at "
                "once; machines it already enrolled keep their own keys."
            ).classes("text-sm text-grey-7")
            self.links_list(await self._links())

    async def _links(self) -> list[LinkInfo]:
        return await run_in_threadpool(self.services.install_links.list, org_id=self.user.org_id)

    async def show_links(self) -> None:
        self.links_list.refresh(await self._links())

    @ui.refreshable_method
    def links_list(self, links: list[LinkInfo]) -> None:
        live = [link for link in links if link.state == "live"]
        if not live:
            ui.label("No live install links.").classes("text-grey-7").mark("no-links")
        for link in live:
            ui.separator()
            with ui.row().classes("w-full items-center gap-x-3 gap-y-0").mark(f"link-{link.link_id}"):
                ui.label(f"#{link.link_id}").classes("font-mono text-grey-7")
                ui.label(f"expires {exact_time(link.expires_at, self.tz)}").classes("text-sm")
                ui.label(f"{link.uses_left} of {link.uses_allowed} uses left").classes("text-sm").mark(
                    f"uses-left-{link.link_id}"
                )
                ui.label(f"by {link.created_by}").classes("text-xs text-grey-7 break-all")
                ui.space()
                ui.button(
                    "Revoke",
                    color="negative",
                    on_click=lambda chosen=link: theme.confirm(
                        f"Revoke install link #{chosen.link_id}? Its commands stop working at once.",
                        "Revoke",
                        lambda: self.revoke(chosen.link_id),
                    ),
                ).props("outline dense").mark(f"revoke-link-{link.link_id}")
        gone = len(links) - len(live)
        if gone:
            ui.label(f"{gone} expired, used-up or revoked link{'s' if gone != 1 else ''} not shown.").classes(
                "text-xs text-grey-7"
            )

    async def revoke(self, link_id: int) -> None:
        done = await self._as_admin(
            lambda org_id, email: self.services.install_links.revoke(org_id=org_id, link_id=link_id, actor=email)
        )
        if done is not None:
            ui.notify(f"Install link #{link_id} revoked.", type="positive")
            await self.show_links()


def register(services: AppServices) -> None:
    @signed_in_page(services, PATH, "Install the agent", admin_only=True)
    async def install_page(user: auth.SignedInUser, request: Request) -> None:
        ui.label("Install the agent").classes("text-2xl font-bold")
        screen = InstallScreen(services, user, str(request.base_url))
        screen.create_section()
        await screen.links_section()
