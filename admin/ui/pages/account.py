"""The signed-in user's own account (any role): change their password, sign out everywhere.

Changing the password ends every session of the user (admin/services/sessions.py); this browser
gets a fresh session at once, the others sign in again.
"""

from __future__ import annotations

from nicegui import ui
from starlette.concurrency import run_in_threadpool

from admin.services.accounts import MIN_PASSWORD_LENGTH
from admin.services.context import AppServices
from admin.services.errors import ServiceError
from admin.ui import auth, theme
from admin.ui.actor import ui_actor
from admin.ui.guard import signed_in_page


class AccountScreen:
    def __init__(self, services: AppServices, user: auth.SignedInUser) -> None:
        self.services = services
        self.user = user

    def build(self) -> None:
        ui.label("Your account").classes("text-2xl font-bold")
        with theme.section("Change your password").mark("password-section"):
            self.current = ui.input("Current password", password=True, password_toggle_button=True)
            self.current.props("dense outlined maxlength=1024 autocomplete=current-password").classes("w-full")
            self.current.mark("current-password")
            self.new = ui.input("New password", password=True, password_toggle_button=True)
            self.new.props(
                f"dense outlined maxlength=1024 autocomplete=new-password hint='at least {MIN_PASSWORD_LENGTH} characters'"
            ).classes("w-full")
            self.new.mark("new-password")
            self.repeat = ui.input("Repeat the new password", password=True)
            self.repeat.props("dense outlined maxlength=1024 autocomplete=new-password").classes("w-full")
            self.repeat.mark("repeat-password")
            self.error = ui.label().classes("text-negative text-sm").mark("password-error")
            ui.button("Change password", on_click=self.change_password).mark("change-password")
        with theme.section("Signed in elsewhere?").mark("sessions-section"):
            ui.label("Ends your sessions in every browser, this one included.").classes("text-sm text-grey-7")
            ui.button("Sign out everywhere", icon="logout", color="negative", on_click=self.sign_out_everywhere).props(
                "outline"
            ).mark("sign-out-everywhere")

    async def change_password(self) -> None:
        self.error.text = ""
        new, current = self.new.value or "", self.current.value or ""
        if new != (self.repeat.value or ""):
            self.error.text = "The new passwords differ."
            return
        if len(current) > auth.MAX_PASSWORD_LENGTH:
            self.error.text = "Wrong current password."
            return
        try:
            me = await run_in_threadpool(
                auth.PASSWORD_CHECKS.run, self.services.accounts.authenticate_user, self.user.email, current
            )
        except auth.SignInRefused as refused:
            self.error.text = str(refused)
            return
        if me is None or me.id != self.user.user_id:
            self.error.text = "Wrong current password."
            return
        try:
            actor = ui_actor(self.user)  # here: the page's context is not there in the worker thread
            await run_in_threadpool(
                lambda: self.services.accounts.set_password(org_id=me.org_id, user_id=me.id, password=new, actor=actor)
            )
        except ServiceError as refused:
            self.error.text = refused.message
            return
        # Every session ended, this one too: this browser signs straight in again.
        fresh = await run_in_threadpool(self.services.accounts.user, org_id=me.org_id, user_id=me.id)
        code = await run_in_threadpool(lambda: self.services.sessions.start(user=fresh))
        ui.notify("Password changed. Your other sessions have ended.", type="positive")
        ui.navigate.to(auth.complete_url(code, "/account"))

    async def sign_out_everywhere(self) -> None:
        await auth.sign_out_everywhere(self.services, self.user)


def register(services: AppServices) -> None:
    @signed_in_page(services, "/account", "Account")
    async def account_page(user: auth.SignedInUser) -> None:
        """Any signed-in user, for their own account only (the user comes from the session)."""
        AccountScreen(services, user).build()
