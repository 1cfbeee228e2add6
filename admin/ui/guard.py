"""The one guard every signed-in page is declared with.

`@signed_in_page(services, "/path", "Title")` registers the page: a visitor who is not signed in
(or whose session went stale, or who was removed) is sent to the sign-in page and back after; a
signed-in user gets the page's frame (header, navigation) around the body. With `admin_only=True`
a non-admin sees a notice instead of the body, and the body never runs; with `available=`, a
page of a feature that is off answers 404 to everyone. The body is called as
`body(user=..., **its query parameters)` (and `request=` when it asks for it); it may return
nothing: the guard owns the response.

Actions on a page (a button that deletes or creates) check the role again when they run, through
`admin_action`: a page loaded by an admin demoted meanwhile must not act.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response
from nicegui import ui
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from admin.services.audit import Actor
from admin.services.context import AppServices
from admin.services.errors import ServiceError
from admin.ui import auth, theme
from admin.ui.actor import ui_actor

PageBody = Callable[..., Awaitable[None]]
ADMINS_ONLY = "Only admins may use this page. Ask an admin of your organisation."
# Every page this guard registered, with whether it is for admins only (tests check that no page
# but the sign-in page was registered another way).
GUARDED: dict[str, bool] = {}


def signed_in_page(
    services: AppServices,
    path: str,
    title: str,
    *,
    admin_only: bool = False,
    available: Callable[[], bool] | None = None,
) -> Callable[[PageBody], PageBody]:
    def register(body: PageBody) -> PageBody:
        wanted = inspect.signature(body).parameters
        if "user" not in wanted:
            raise TypeError(f"{body.__name__} must take `user` (the signed-in user)")
        query = [p for name, p in wanted.items() if name not in ("user", "request")]
        passes_request = "request" in wanted

        async def page(request: Request, **params: Any) -> Response | None:
            if available is not None and not available():  # a feature that is off: no such page
                return PlainTextResponse("Not found", status_code=404)
            user = await auth.current_user(services)
            if user is None:
                return auth.to_login(request)
            with theme.frame(user, title):
                if admin_only and not user.is_admin:
                    theme.notice(ADMINS_ONLY, icon="lock", marker="admins-only")
                    return None
                if passes_request:
                    params["request"] = request
                await body(user=user, **params)
            return None

        # What NiceGUI and FastAPI read to parse the query: the request, then the body's parameters.
        request_param = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
        page.__signature__ = inspect.Signature([request_param, *query])  # type: ignore[attr-defined]
        page.__name__ = body.__name__
        ui.page(path)(page)
        GUARDED[path] = admin_only
        return body

    return register


T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    """An action that ran, with what it returned (which may be None)."""

    value: T


def problem_text(exc: ValidationError | ServiceError) -> str:
    """What a refused change tells the admin: the service's message, or the first invalid field."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return exc.message


async def admin_action(
    services: AppServices,
    action: Callable[[auth.SignedInUser, Actor], T],
    *,
    refused: str,
    done: str = "",
) -> Done[T] | None:
    """Runs `action(user, actor)` off the event loop if the session's user is (still) an admin, and
    says how it went in a notification; None when it did not run or the service refused it. The
    actor is who the audit log names: the user and their browser's address."""
    user = await auth.current_user(services)
    if user is None or not user.is_admin:
        ui.notify(refused, type="negative")
        return None
    try:
        value = await run_in_threadpool(action, user, ui_actor(user))
    except (ValidationError, ServiceError) as exc:
        ui.notify(problem_text(exc), type="negative")
        return None
    if done:
        ui.notify(done, type="positive")
    return Done(value)
