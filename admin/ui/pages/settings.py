"""Organisation settings (admins): API keys, users, agent install instructions, what the server runs with.

Every change re-reads the signed-in user first (a role taken away a second ago counts), goes
through AccountService (which checks the input), and shows the service's message when refused.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from nicegui import app, ui
from starlette.concurrency import run_in_threadpool

from admin.services.accounts import MIN_PASSWORD_LENGTH, ROLES
from admin.services.audit import Actor
from admin.services.context import AppServices
from admin.ui import auth, theme
from admin.ui.components.copy_text import copy_text
from admin.ui.components.format import duration, exact_time, zone
from admin.ui.guard import admin_action, signed_in_page
from admin.ui.pages.install import PATH as INSTALL_PATH
from common.constants import ALL_SCOPES, API_VERSION, SCOPE_AGENT, SCOPE_ENROLL
from common.version import __version__

SCOPE_HELP = {
    "agent": "send reports and heartbeats",
    "read": "list the fleet",
    "admin": "remove machines",
    "enroll": "installers: buys each machine its own key (alone)",
}
# Where the install instructions have the enrol key saved: a file, never the command line (other
# users of the machine see command lines, and shells keep them).
ENROL_KEY_FILE = "enroll-token"


def install_commands(server_url: str) -> list[str]:
    """An agent already installed (by hand or an installer), pointed at this server with an enrol key
    saved in a file (never on the command line): check, run."""
    return [
        f"dashfleet-agent --server {server_url} --enroll-token-file {ENROL_KEY_FILE} --once",
        f"dashfleet-agent --server {server_url} --enroll-token-file {ENROL_KEY_FILE}",
    ]


class SettingsScreen:
    def __init__(self, services: AppServices, user: auth.SignedInUser, server_url: str) -> None:
        self.services = services
        self.user = user
        self.server_url = server_url
        self.tz = zone(app.storage.user.get("tz"))

    async def _as_admin(self, action: Callable[[int, Actor], object], done: str) -> bool:
        """Runs a change for the organisation (the action gets its id and who acts) if the user is
        (still) an admin; says how it went."""
        ran = await admin_action(
            self.services,
            lambda user, actor: action(user.org_id, actor),
            refused="Only an admin can change the organisation's settings.",
            done=done,
        )
        return ran is not None

    # -- API keys ------------------------------------------------------------------------------
    async def keys_section(self) -> None:
        with theme.section("API keys").mark("keys-section"):
            ui.label(
                "Agents send reports with a key of scope agent; scripts list the fleet with scope read. "
                "A key is shown once, when it is made."
            ).classes("text-sm text-grey-7")
            with ui.row().classes("items-center gap-2"):
                chosen = {
                    scope: ui.checkbox(scope, value=scope == SCOPE_AGENT)
                    .mark(f"scope-{scope}")
                    .tooltip(SCOPE_HELP.get(scope, ""))
                    for scope in ALL_SCOPES
                }
                ui.button(
                    "Create key",
                    icon="key",
                    on_click=lambda: self.create_key([s for s, box in chosen.items() if box.value]),
                ).mark("create-key")
            self.keys_list(await self._keys())

    # The lists are read off the event loop (a slow database must not stall every page of this
    # process), then drawn; a change reads them again and redraws.
    async def _keys(self) -> list:
        return await run_in_threadpool(self.services.accounts.list_keys, org_id=self.user.org_id)

    async def show_keys(self) -> None:
        self.keys_list.refresh(await self._keys())

    @ui.refreshable_method
    def keys_list(self, keys: list) -> None:
        if not keys:
            ui.label("No keys.").classes("text-grey-7")
        for key in keys:
            ui.separator()
            with ui.row().classes("w-full items-center gap-x-3 gap-y-0").mark(f"key-{key.id}"):
                ui.label(f"#{key.id}").classes("font-mono text-grey-7")
                ui.label(f"{key.prefix}…").classes("font-mono")
                ui.label(key.scopes.replace(" ", ", ")).classes("text-sm")
                ui.label(f"made {exact_time(key.created_at, self.tz)}").classes("text-xs text-grey-7")
                ui.space()
                if key.revoked_at is not None:
                    ui.badge("revoked", color="grey-7").tooltip(exact_time(key.revoked_at, self.tz))
                else:
                    ui.button(
                        "Revoke",
                        color="negative",
                        on_click=lambda k=key: theme.confirm(
                            f"Revoke key #{k.id} ({k.prefix}…)? Agents using it are refused at once.",
                            "Revoke",
                            lambda: self.revoke_key(k.id),
                        ),
                    ).props("outline dense").mark(f"revoke-{key.id}")

    async def create_key(self, scopes: list[str]) -> None:
        created = {}

        def make(org_id: int, actor: Actor) -> None:
            created["key"] = self.services.accounts.create_key(org_id=org_id, scopes=scopes, actor=actor)

        if not await self._as_admin(make, ""):
            return
        await self.show_keys()
        key = created["key"]
        with ui.dialog().props("persistent") as dialog, ui.card().classes("w-full max-w-lg gap-2"):
            ui.label("Your new API key").classes("text-lg font-bold")
            ui.label("Copy it now: it is shown only this once and stored only as a hash.").classes(
                "text-sm text-negative"
            )
            copy_text(key.api_key, marker="new-key")
            ui.label(f"Scopes: {', '.join(key.scopes)}").classes("text-sm")
            if SCOPE_ENROLL in key.scopes:
                ui.label(
                    f"Save it in a file named {ENROL_KEY_FILE} on each machine (readable only by you), then run:"
                ).classes("text-sm")
                copy_text(install_commands(self.server_url)[1], marker="new-key-command")
            elif SCOPE_AGENT in key.scopes:
                ui.label("Agents read it from their config file (agent.toml):").classes("text-sm")
                copy_text(f'token = "{key.api_key}"')
            # The secret leaves the page with the dialog (persistent: only Done closes it).
            ui.button("Done", on_click=dialog.delete).classes("self-end").mark("key-done")
        dialog.open()

    async def revoke_key(self, key_id: int) -> None:
        if await self._as_admin(
            lambda org_id, actor: self.services.accounts.revoke_key(org_id=org_id, key_id=key_id, actor=actor),
            f"Key #{key_id} revoked.",
        ):
            await self.show_keys()

    # -- users -----------------------------------------------------------------------------------
    async def _users(self) -> list:
        return await run_in_threadpool(self.services.accounts.list_users, org_id=self.user.org_id)

    async def show_users(self) -> None:
        self.users_list.refresh(await self._users())

    async def users_section(self) -> None:
        with theme.section("Users").mark("users-section"):
            self.users_list(await self._users())
            ui.label("Add a user").classes("text-base font-bold mt-2")
            with ui.row().classes("w-full items-start gap-2"):
                email = (
                    ui.input("E-mail")
                    .props("dense outlined type=email maxlength=320")
                    .classes("grow min-w-[12rem]")
                    .mark("new-user-email")
                )
                password = (
                    ui.input("Password", password=True, password_toggle_button=True)
                    .props(f"dense outlined maxlength=1024 hint='at least {MIN_PASSWORD_LENGTH} characters'")
                    .classes("grow min-w-[12rem]")
                    .mark("new-user-password")
                )
                role = (
                    ui.select(list(ROLES), value="viewer").props("dense outlined").classes("w-32").mark("new-user-role")
                )
                ui.button("Add user", icon="person_add", on_click=lambda: self.add_user(email, password, role)).mark(
                    "add-user"
                )

    @ui.refreshable_method
    def users_list(self, users: list) -> None:
        for member in users:
            is_me = member.id == self.user.user_id
            ui.separator()
            with ui.row().classes("w-full items-center gap-x-3 gap-y-1").mark(f"user-{member.id}"):
                ui.label(member.email + (" (you)" if is_me else "")).classes("break-all grow min-w-[12rem]")
                with ui.row().classes("items-center gap-1 no-wrap"):
                    select = ui.select(list(ROLES), value=member.role).props("dense outlined").classes("w-32")
                    select.mark(f"role-{member.id}")
                    remove = ui.button(
                        icon="person_remove",
                        color="negative",
                        on_click=lambda m=member: theme.confirm(
                            f"Remove {m.email}? They are signed out at once.", "Remove", lambda: self.remove_user(m.id)
                        ),
                    )
                    remove.props('flat round dense aria-label="Remove user"').mark(f"remove-{member.id}")
                    reset = ui.button(icon="password", on_click=lambda m=member: self.ask_new_password(m.id, m.email))
                    reset.props('flat round dense aria-label="Set password"').tooltip("Set a new password")
                    reset.mark(f"set-password-{member.id}")
                if is_me:  # another admin changes or removes you: no locking yourself out by a slip
                    select.disable()
                    remove.disable()
                    reset.disable()  # your own: on the account page, with your current password
                else:
                    select.on_value_change(lambda e, m=member: self.set_role(m.id, e.value))

    async def set_role(self, user_id: int, role: str) -> None:
        await self._as_admin(
            lambda org_id, actor: self.services.accounts.set_role(
                org_id=org_id, user_id=user_id, role=role, actor=actor
            ),
            f"Role changed to {role}.",
        )
        await self.show_users()  # shows the stored role, whether or not the change was accepted

    async def remove_user(self, user_id: int) -> None:
        if await self._as_admin(
            lambda org_id, actor: self.services.accounts.delete_user(org_id=org_id, user_id=user_id, actor=actor),
            "User removed.",
        ):
            await self.show_users()

    def ask_new_password(self, user_id: int, email: str) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-md gap-2"):
            ui.label(f"New password for {email}").classes("text-lg font-bold break-all")
            ui.label("They are signed out of every browser and sign in again with it.").classes("text-sm")
            password = ui.input("New password", password=True, password_toggle_button=True)
            password.props(f"dense outlined maxlength=1024 hint='at least {MIN_PASSWORD_LENGTH} characters'")
            password.classes("w-full").mark("reset-password")

            async def save() -> None:
                if await self.set_password(user_id, password.value or ""):
                    dialog.delete()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.delete).props("flat")
                ui.button("Set password", on_click=save).mark("reset-password-save")
        dialog.on("hide", dialog.delete)
        dialog.open()

    async def set_password(self, user_id: int, password: str) -> bool:
        """An admin sets another user's password (of their own organisation only: the service
        looks the user up in the admin's organisation); that user's sessions end."""
        return await self._as_admin(
            lambda org_id, actor: self.services.accounts.set_password(
                org_id=org_id, user_id=user_id, password=password, actor=actor
            ),
            "Password set. They were signed out everywhere.",
        )

    async def add_user(self, email: ui.input, password: ui.input, role: ui.select) -> None:
        def create(org_id: int, actor: Actor) -> None:
            self.services.accounts.create_user(
                org_id=org_id, email=email.value or "", password=password.value or "", role=role.value, actor=actor
            )

        if await self._as_admin(create, f"User {(email.value or '').strip().lower()} added."):
            email.value, password.value = "", ""
            await self.show_users()

    # -- enrolment ---------------------------------------------------------------------------------
    async def enrolment_section(self) -> None:
        org = await run_in_threadpool(self.services.accounts.org, self.user.org_id)
        with theme.section("Enrolment").mark("enrolment-section"):
            ui.label(
                "An enrol key buys each machine a key of its own, which speaks only for that machine. "
                "Installers carry the enrol key; revoking it leaves enrolled machines working."
            ).classes("text-sm text-grey-7")
            ui.button("Make an enrol key", icon="key", on_click=lambda: self.create_key([SCOPE_ENROLL])).mark(
                "create-enrol-key"
            )
            ui.switch(
                "Refuse reports from organisation keys (only enrolled machines' own keys)",
                value=org.require_enrolment,
                on_change=lambda e: self.set_require_enrolment(e.value),
            ).mark("require-enrolment")
            with ui.row().classes("items-center gap-2"):
                quota = (
                    ui.number(
                        "Machine quota",
                        value=org.machine_quota,
                        min=1,
                        precision=0,
                        placeholder=f"server default ({self.services.settings.machine_quota})",
                    )
                    .props("dense outlined clearable")
                    .classes("w-64")
                    .mark("machine-quota")
                )
                ui.button("Save quota", on_click=lambda: self.set_quota(quota.value)).props("outline dense").mark(
                    "save-quota"
                )
            ui.label("Enrolled machines").classes("text-base font-bold mt-2")
            self.enrolled_list(await self._enrolled())

    async def _enrolled(self) -> list:
        return await run_in_threadpool(self.services.enrolment.enrolled_machines, org_id=self.user.org_id)

    @ui.refreshable_method
    def enrolled_list(self, enrolled: list) -> None:
        if not enrolled:
            ui.label("No machine is enrolled yet.").classes("text-grey-7").mark("no-enrolled")
        for entry in enrolled:
            ui.separator()
            with ui.row().classes("w-full items-center gap-x-3 gap-y-0").mark("enrolled-machine"):
                ui.label(entry.machine_id).classes("font-mono break-all").mark("enrolled-id")
                ui.label(f"key {entry.key_prefix}…").classes("font-mono text-xs text-grey-7")
                ui.label(f"enrolled {exact_time(entry.enrolled_at, self.tz)}").classes("text-xs text-grey-7")
                ui.space()
                ui.button(
                    "Reset enrolment",
                    color="negative",
                    on_click=lambda m=entry.machine_id: theme.confirm(
                        f"Reset the enrolment of {m}? Its key is revoked at once; its agent enrols again "
                        "with the enrol key it was installed with, from any hardware.",
                        "Reset",
                        lambda: self.reset_enrolment(m),
                    ),
                ).props("outline dense").mark("reset-enrolment")

    async def reset_enrolment(self, machine_id: str) -> None:
        def reset(org_id: int, actor: Actor) -> None:
            self.services.enrolment.reset(org_id=org_id, machine_id=machine_id, actor=actor)

        if await self._as_admin(reset, "Enrolment reset: the machine's key is revoked."):
            self.enrolled_list.refresh(await self._enrolled())
            await self.show_keys()

    async def set_require_enrolment(self, required: bool) -> None:
        await self._as_admin(
            lambda org_id, actor: self.services.accounts.set_require_enrolment(
                org_id=org_id, required=required, actor=actor
            ),
            "Only enrolled machines' own keys are accepted now."
            if required
            else "Organisation agent keys are accepted again.",
        )

    async def set_quota(self, value: float | None) -> None:
        quota = None if value in (None, "") else value
        if quota is not None and (not float(quota).is_integer()):
            ui.notify("The machine quota must be a whole number.", type="negative")
            return
        await self._as_admin(
            lambda org_id, actor: self.services.accounts.set_machine_quota(
                org_id=org_id, quota=None if quota is None else int(quota), actor=actor
            ),
            f"Machine quota: {int(quota)} machines." if quota is not None else "Machine quota: the server's default.",
        )

    # -- agent install, configuration --------------------------------------------------------------
    def install_section(self) -> None:
        with theme.section("Install the agent").mark("install-section"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(
                    "An install link gives one command per OS that installs this server's own agent on a "
                    "workstation and enrols it."
                ).classes("text-sm grow")
                ui.button("Install links", icon="add_link", on_click=lambda: ui.navigate.to(INSTALL_PATH)).props(
                    "outline"
                ).mark("to-install-page")
            ui.label("Server URL").classes("text-sm text-grey-7")
            copy_text(self.server_url, marker="server-url")
            ui.label(
                "An agent installed another way (docs/install-agent.md), with an enrol key (Enrolment, above) "
                f"saved in a file named {ENROL_KEY_FILE}: check the connection with one report, then run it "
                "(add --no-tray on servers):"
            ).classes("text-sm text-grey-7")
            commands = install_commands(self.server_url)
            copy_text(commands[0], marker="install-command")
            copy_text(commands[1])

    def about_section(self) -> None:
        config = self.services.settings.public_config()
        with theme.section("This server").mark("about-section"):
            pairs = (
                ("Organisation", self.user.org_name),
                ("Version", f"{__version__} (API {API_VERSION})"),
                ("Fleet TTL", duration(config["FLEET_TTL_SECONDS"])),
                ("Offline after", duration(config["OFFLINE_AFTER_SECONDS"])),
                ("Fleet refresh", duration(config["REFRESH_INTERVAL_MS"] / 1000)),
                ("Messaging", "on" if config["FEATURES"]["messaging"] else "off"),
                ("Commands", "on" if config["FEATURES"]["commands"] else "off"),
            )
            for name, value in pairs:
                with ui.row().classes("w-full justify-between"):
                    ui.label(name).classes("text-grey-7")
                    ui.label(value).mark(f"about-{name.lower().replace(' ', '-')}")


def server_url(services: AppServices, request: Request) -> str:
    """DASHFLEET_PUBLIC_URL when set, else the address this browser reached the server at."""
    return (services.settings.public_url or str(request.base_url)).rstrip("/")


def register(services: AppServices) -> None:
    @signed_in_page(services, "/settings", "Settings", admin_only=True)
    async def settings_page(user: auth.SignedInUser, request: Request) -> None:
        ui.label("Organisation settings").classes("text-2xl font-bold")
        screen = SettingsScreen(services, user, server_url(services, request))
        await screen.keys_section()
        await screen.enrolment_section()
        await screen.users_section()
        screen.install_section()
        screen.about_section()
