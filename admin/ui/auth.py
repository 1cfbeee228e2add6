"""Who is signed in to the web UI, signing in (throttled) and out, and the guard of every page.

A session is a row of `web_session` named by an HttpOnly cookie (admin/services/sessions.py), so
every server process sees the same sessions. Signing in is two steps: the sign-in page's handler
checks the password and gets a one-time code, then the browser trades the code for a brand-new
session cookie at COMPLETE_PATH (cookies can only be set by an HTTP answer, not over the page's
websocket). Nothing is kept on the server before a sign-in succeeds.

The guard: `current_user` is what every page calls first. When it finds a live session it also
guards the page's client: every event the browser sends (clicks, filters, search, paging...) is
handled only after the session is checked again, and a sweep every SESSION_SWEEP_SECONDS ends the
pages of sessions that ended elsewhere (sign-out in another tab or process, removal, a password or
role change). An ended page is sent to the sign-in page and deleted on the server: its timers
stop and nothing it sends is handled any more. Handlers need no check of their own for this.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import Client, app, background_tasks, context, ui
from starlette.concurrency import run_in_threadpool

from admin.services.context import AppServices
from admin.services.sessions import SESSION_MAX_AGE_SECONDS, throttle_keys

SESSION_COOKIE = "dashfleet_session"
LOGIN_PATH = "/login"
COMPLETE_PATH = "/login/complete"
# Longer inputs are refused before any hashing: argon2 on a megabyte is a cheap way to burn CPU.
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 320
MAX_TOKEN_LENGTH = 100
# Password hashes computed at once by this process, and sign-ins allowed to wait for one: argon2
# takes tenths of a second of a core and tens of MiB, so a burst of sign-ins must queue, not pile up.
MAX_CONCURRENT_PASSWORD_CHECKS = 2
MAX_WAITING_PASSWORD_CHECKS = 16
SESSION_SWEEP_SECONDS = 2.0
# NiceGUI's per-browser storage files (preferences: time zone, dark mode, the fleet's view) not
# touched for this long are deleted.
USER_STORAGE_MAX_AGE_SECONDS = SESSION_MAX_AGE_SECONDS
USER_STORAGE_SWEEP_SECONDS = 3600.0

T = TypeVar("T")
log = logging.getLogger("dashfleet")


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


class _PasswordCheckGate:
    """At most `slots` password checks at once in this process, and a short queue behind them."""

    def __init__(self, slots: int, queue: int) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._admitted = 0
        self._max_admitted = slots + queue
        self.busiest = 0  # the most checks ever running at once (docs, tests)
        self._running = 0

    def run(self, check: Callable[..., T], *args: Any) -> T:
        """Run `check` in this worker thread when a slot is free; SignInRefused when too many wait."""
        with self._lock:
            if self._admitted >= self._max_admitted:
                raise SignInRefused("The server is busy signing people in. Try again in a moment.")
            self._admitted += 1
        try:
            with self._slots:
                with self._lock:
                    self._running += 1
                    self.busiest = max(self.busiest, self._running)
                try:
                    return check(*args)
                finally:
                    with self._lock:
                        self._running -= 1
        finally:
            with self._lock:
                self._admitted -= 1


PASSWORD_CHECKS = _PasswordCheckGate(MAX_CONCURRENT_PASSWORD_CHECKS, MAX_WAITING_PASSWORD_CHECKS)


# -- the session of a page --------------------------------------------------------------------
def _token_of(client: Client) -> str | None:
    request = client.request
    token = request.cookies.get(SESSION_COOKIE) if request is not None else None
    return token if token and len(token) <= MAX_TOKEN_LENGTH else None


@dataclass
class _Guard:
    services: AppServices
    token: str
    token_hash: str


_guards: dict[str, _Guard] = {}  # client id -> the session it was opened with


async def current_user(services: AppServices) -> SignedInUser | None:
    """The signed-in user as the database knows them now, or None. Called while a page is built,
    it also guards that page (see the module's docstring)."""
    client = context.client
    token = _token_of(client)
    if token is None:
        return None
    found = await run_in_threadpool(services.sessions.check, token)
    if found is None:
        return None
    _guard(client, services, token)
    return SignedInUser(
        user_id=found.user_id, org_id=found.org_id, email=found.email, role=found.role, org_name=found.org_name
    )


def _guard(client: Client, services: AppServices, token: str) -> None:
    if client.id in _guards:
        return
    _guards[client.id] = _Guard(services, token, services.sessions.hash_token(token))
    handle_event = client.handle_event
    # One at a time and in order, as the browser sent them: a value change before the click that reads it.
    in_order = asyncio.Lock()

    def checked(msg: dict) -> None:
        async def check_then_handle() -> None:
            async with in_order:
                if client.is_deleted:
                    return
                if await run_in_threadpool(services.sessions.check, token) is None:
                    end_page(client)
                    return
                handle_event(msg)

        background_tasks.create(check_then_handle(), name="event after a session check")

    client.handle_event = checked  # type: ignore[method-assign]  # the socket's one entry for events


def end_page(client: Client) -> None:
    """A page whose session ended: to the sign-in page, then deleted on the server."""
    _guards.pop(client.id, None)
    if client.is_deleted:
        return
    with client:
        ui.navigate.to(LOGIN_PATH)

    async def delete_soon() -> None:
        await asyncio.sleep(1.0)  # the navigation is sent first
        if not client.is_deleted:
            try:
                client.delete()
            except KeyError:  # NiceGUI removed it meanwhile
                pass

    background_tasks.create(delete_soon(), name="delete an ended page")


async def sweep_ended_sessions(services: AppServices) -> None:
    """Ends the open pages whose sessions ended (one query for all of this process's pages)."""
    guards = {cid: g for cid, g in list(_guards.items()) if g.services is services}
    for cid in [cid for cid in guards if cid not in Client.instances]:
        _guards.pop(cid, None)
        guards.pop(cid)
    if not guards:
        return
    alive = await run_in_threadpool(services.sessions.alive, {g.token_hash for g in guards.values()})
    for cid, guard in guards.items():
        client = Client.instances.get(cid)
        if guard.token_hash not in alive and client is not None:
            end_page(client)


async def still_signed_in(services: AppServices) -> bool:
    """For a page's timer: a page left open must not go on showing data to someone signed out."""
    client = context.client
    token = _token_of(client)
    if token is not None and await run_in_threadpool(services.sessions.check, token) is not None:
        return True
    end_page(client)
    return False


# -- where to go ------------------------------------------------------------------------------
def safe_next(path: str | None) -> str:
    """Where to go after signing in: only a path of this site, else the fleet (no open redirect).

    Browsers drop tabs and newlines from a URL and read a backslash as a slash, so "/\\t/evil" and
    "/\\\\evil" lead to another host: only visible ASCII is accepted, and the path, decoded, must not
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


def complete_url(code: str, next_path: str) -> str:
    return f"{COMPLETE_PATH}?code={quote(code, safe='')}&next={quote(safe_next(next_path), safe='')}"


# -- signing in and out -------------------------------------------------------------------------
async def sign_in(services: AppServices, *, email: str, password: str, address: str) -> str:
    """Check the credentials (with growing delays after failures) and return the one-time code
    that COMPLETE_PATH trades for a session cookie."""
    email_key = email.strip().lower()
    if not email_key or not password:
        raise SignInRefused("Enter your e-mail and password.")
    if len(email_key) > MAX_EMAIL_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        raise SignInRefused("Wrong e-mail or password.")
    keys = throttle_keys(email_key, address)
    wait = await run_in_threadpool(services.sessions.wait_before_sign_in, keys)
    if wait:
        raise SignInRefused(f"Too many failed sign-ins. Try again in {wait} s.")
    user = await run_in_threadpool(PASSWORD_CHECKS.run, services.accounts.authenticate_user, email_key, password)
    if user is None:
        await run_in_threadpool(services.sessions.record_failure, keys)
        raise SignInRefused("Wrong e-mail or password.")
    await run_in_threadpool(services.sessions.record_success, keys)
    return await run_in_threadpool(services.sessions.start, user=user)


async def complete_sign_in(services: AppServices, request: Request, code: str, next_path: str) -> RedirectResponse:
    """COMPLETE_PATH: a fresh session cookie for a valid code (a new session at every sign-in)."""
    # Only from this site's own sign-in page: another site cannot sign a browser in to an
    # account of its choosing (browsers without Fetch Metadata send no such header).
    same_site = request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    token = None
    if same_site and code and len(code) <= MAX_TOKEN_LENGTH:
        token = await run_in_threadpool(services.sessions.complete, code)
    if token is None:
        return RedirectResponse(LOGIN_PATH, status_code=303)
    old = request.cookies.get(SESSION_COOKIE)
    if old and len(old) <= MAX_TOKEN_LENGTH:
        await run_in_threadpool(services.sessions.end, old)
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",  # uvicorn applied a trusted proxy's X-Forwarded-Proto
    )
    return response


async def sign_out() -> None:
    """End this page's session (other tabs and processes follow within SESSION_SWEEP_SECONDS) and
    forget this browser's preferences."""
    client = context.client
    guard = _guards.get(client.id)
    if guard is not None:
        await run_in_threadpool(guard.services.sessions.end, guard.token)
    app.storage.user.clear()  # its file goes too
    end_page(client)


async def sign_out_everywhere(services: AppServices, user: SignedInUser) -> None:
    await run_in_threadpool(services.sessions.end_all_of, org_id=user.org_id, user_id=user.user_id)
    app.storage.user.clear()
    end_page(context.client)


def client_address(request: Request | None) -> str:
    """The address the throttle counts: uvicorn already applied trusted X-Forwarded-For."""
    if request is None or request.client is None:
        return "unknown"
    return request.client.host


# -- background work of the web UI ---------------------------------------------------------------
def prune_user_storage_files(directory: Path, *, max_age: float, now: float | None = None) -> int:
    """NiceGUI's per-browser storage files untouched for `max_age` (browsers that never signed out)."""
    now = time.time() if now is None else now
    removed = 0
    for path in directory.glob("storage-user-*.json"):
        try:
            if path.stat().st_mtime < now - max_age:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def start_background_work(services: AppServices) -> None:
    """The sweeps, started with the web UI (NiceGUI's startup)."""

    async def sweep_sessions() -> None:
        while True:
            await asyncio.sleep(SESSION_SWEEP_SECONDS)
            try:
                await sweep_ended_sessions(services)
            except Exception:  # a database hiccup must not end the sweeps
                log.exception("the sweep of ended web sessions failed")

    async def sweep_storage() -> None:
        while True:
            await run_in_threadpool(prune_user_storage_files, app.storage.path, max_age=USER_STORAGE_MAX_AGE_SECONDS)
            await asyncio.sleep(USER_STORAGE_SWEEP_SECONDS)

    background_tasks.create(sweep_sessions(), name="end pages of ended sessions")
    background_tasks.create(sweep_storage(), name="prune old user storage")
