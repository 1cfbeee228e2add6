"""Sign-in: e-mail and password (auth.sign_in: growing delays after failures), then the browser
trades the one-time code for its session cookie at auth.COMPLETE_PATH.

Nothing here writes to the server before the password is right: the page binds nothing to the
per-browser storage (its dark mode follows the system)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, ui

from admin.services.context import AppServices
from admin.ui import auth, theme

# The browser's time zone, so times show in the user's local time (UTC if it does not answer).
_TIMEZONE_JS = "Intl.DateTimeFormat().resolvedOptions().timeZone"


async def _browser_timezone() -> str | None:
    try:
        answer = await ui.run_javascript(_TIMEZONE_JS, timeout=2.0)
    except TimeoutError:
        return None
    return answer if isinstance(answer, str) and len(answer) < 64 else None


def register(services: AppServices) -> None:
    @app.get(auth.COMPLETE_PATH, include_in_schema=False)
    async def complete_sign_in(request: Request, code: str = "", next: str = "/") -> RedirectResponse:  # noqa: A002
        return await auth.complete_sign_in(services, request, code, next)

    @ui.page(auth.LOGIN_PATH)
    async def login_page(request: Request, next: str = "/"):  # noqa: A002 - the query parameter's name
        if await auth.current_user(services) is not None:
            return RedirectResponse(auth.safe_next(next), status_code=303)
        theme.apply_colors()
        ui.dark_mode()  # the system's choice: the user's own is kept only once signed in
        ui.page_title(f"Sign in · {theme.BRAND}")

        async def try_sign_in() -> None:
            button.disable()
            try:
                code = await auth.sign_in(
                    services,
                    email=email.value or "",
                    password=password.value or "",
                    address=auth.client_address(request),
                )
            except auth.SignInRefused as refused:
                error.text = str(refused)
                error.set_visibility(True)
                password.value = ""
                return
            finally:
                button.enable()
            app.storage.user["tz"] = await _browser_timezone()  # signed in: preferences may be kept
            ui.navigate.to(auth.complete_url(code, next))

        with ui.column().classes("w-full items-center pt-[12vh] px-2"):
            with ui.card().classes("w-full max-w-sm gap-3 p-6"):
                with ui.row().classes("items-center gap-2"):
                    ui.icon("monitor_heart", size="md", color="primary")
                    ui.label(theme.BRAND).classes("text-2xl font-bold")
                ui.label("Sign in to see your organisation's fleet.").classes("text-sm text-grey-7")
                email = ui.input("E-mail").props("type=email autocomplete=username autofocus maxlength=320")
                email.classes("w-full").mark("email").on("keydown.enter", try_sign_in)
                password = ui.input("Password", password=True, password_toggle_button=True)
                password.props("autocomplete=current-password maxlength=1024").classes("w-full").mark("password")
                password.on("keydown.enter", try_sign_in)
                error = ui.label().classes("text-negative text-sm").mark("login-error")
                error.set_visibility(False)
                button = ui.button("Sign in", on_click=try_sign_in).classes("w-full").mark("sign-in")
        return None
