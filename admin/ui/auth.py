"""Who is signed in to the web UI, signing in (throttled) and out, and the per-page guard.

The session lives in `app.storage.user` (server-side, keyed by NiceGUI's session cookie, which is
signed with DASHFLEET_STORAGE_SECRET). It holds only ids: every page load and every admin action
reads the user again from the database, so a removed user or a changed role takes effect at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, ui
from starlette.concurrency import run_in_threadpool

from admin.core.limits import LOGIN_LIMIT
from admin.services.context import AppServices
from admin.services.errors import NotFound

SESSION_KEY = "auth"
# A session older than this signs in again, whatever the cookie says.
SESSION_MAX_AGE_SECONDS = 7 * 86400
# Longer inputs are refused before any hashing: argon2 on a megabyte is a cheap way to burn CPU.
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 320
LOGIN_PATH = "/login"


@dataclass(frozen=True)
class SignedInUser:
    user_id: int
    org_id: int
    email: str
    role: str
    org_name: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class SignInRefused(Exception):
    """A sign-in that did not happen, with the message to show."""


def _load(services: AppServices, org_id: int, user_id: int) -> SignedInUser | None:
    try:
        user = services.accounts.user(org_id=org_id, user_id=user_id)
        org = services.accounts.org(org_id)
    except NotFound:
        return None
    return SignedInUser(user_id=user.id, org_id=org.id, email=user.email, role=user.role, org_name=org.name)


async def current_user(services: AppServices) -> SignedInUser | None:
    """The signed-in user as the database knows them now, or None (and the stale session is dropped)."""
    session = app.storage.user.get(SESSION_KEY)
    if not isinstance(session, dict):
        return None
    if time.time() - session.get("signed_in_at", 0) > SESSION_MAX_AGE_SECONDS:
        app.storage.user.pop(SESSION_KEY, None)
        return None
    user = await run_in_threadpool(_load, services, session.get("org_id"), session.get("user_id"))
    if user is None:
        app.storage.user.pop(SESSION_KEY, None)
    return user


async def still_signed_in(services: AppServices) -> bool:
    """For a page's timer: a page left open must not go on showing data to someone signed out
    (here or in another tab) or removed meanwhile; such a page goes to the sign-in page."""
    if await current_user(services) is not None:
        return True
    ui.navigate.to(LOGIN_PATH)
    return False


def safe_next(path: str | None) -> str:
    """Where to go after signing in: only a path of this site, else the fleet (no open redirect).

    Browsers drop tabs and newlines from a URL and read a backslash as a slash, so "/\t/evil" and
    "/\\evil" lead to another host: only visible ASCII is accepted, and the path, decoded, must not
    begin with two slashes."""
    if not path or not all("!" <= ch <= "~" for ch in path) or "\\" in path:
        return "/"
    parts = urlsplit(path)
    decoded = unquote(parts.path)
    if parts.scheme or parts.netloc or not decoded.startswith("/") or decoded.startswith(("//", "/\\")):
        return "/"
    if decoded == LOGIN_PATH or decoded.startswith(LOGIN_PATH + "/"):
        return "/"
    return path


def to_login(request: Request) -> RedirectResponse:
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = LOGIN_PATH if wanted == "/" else f"{LOGIN_PATH}?next={quote(wanted, safe='')}"
    return RedirectResponse(target, status_code=303)


async def sign_in(services: AppServices, *, email: str, password: str, address: str) -> SignedInUser:
    """Check the credentials (throttled per client address and per e-mail) and open a session."""
    email_key = email.strip().lower()
    if not email_key or not password:
        raise SignInRefused("Enter your e-mail and password.")
    if len(email_key) > MAX_EMAIL_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        raise SignInRefused("Wrong e-mail or password.")
    # Counted before the password is checked, so guessing costs attempts and never argon2 time
    # beyond the limit. Per address stops one client trying many accounts; per e-mail stops many
    # clients trying one account.
    for scope, identity in (("login-address", address), ("login-email", email_key)):
        refusal = await services.limiter.hit(LOGIN_LIMIT, scope, identity)
        if refusal:
            raise SignInRefused(f"Too many sign-in attempts. Try again in {refusal.retry_after} s.")
    user = await run_in_threadpool(services.accounts.authenticate_user, email_key, password)
    if user is None:
        raise SignInRefused("Wrong e-mail or password.")
    signed_in = await run_in_threadpool(_load, services, user.org_id, user.id)
    if signed_in is None:  # removed between the two reads
        raise SignInRefused("Wrong e-mail or password.")
    app.storage.user[SESSION_KEY] = {"user_id": user.id, "org_id": user.org_id, "signed_in_at": time.time()}
    return signed_in


def sign_out() -> None:
    app.storage.user.pop(SESSION_KEY, None)


def client_address(request: Request | None) -> str:
    """The address the rate limits count: uvicorn already applied trusted X-Forwarded-For."""
    if request is None or request.client is None:
        return "unknown"
    return request.client.host
