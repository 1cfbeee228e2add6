"""Annotated dependencies: each route's needs are visible in its signature."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from admin.api.errors import ApiError, Unauthorized
from admin.core.limits import Refusal
from admin.services.accounts import AccountService, Principal
from admin.services.context import AppServices
from common.constants import SCOPE_ADMIN, SCOPE_READ


async def get_services(request: Request) -> AppServices:
    # async on purpose: FastAPI runs plain-def dependencies in a worker thread, per request.
    return request.app.state.services


ServicesDep = Annotated[AppServices, Depends(get_services)]


def too_many(refusal: Refusal, what: str) -> ApiError:
    return ApiError(
        429, f"Too many {what}; retry in {refusal.retry_after} s", {"Retry-After": str(refusal.retry_after)}
    )


async def authorize(accounts: AccountService, authorization: str, scope: str) -> Principal:
    """The principal of the Bearer key in an Authorization header when it carries `scope`; 401 or
    403 otherwise. Takes the header, not the request, so the hot routes share it (api/hot_routes.py)."""
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized()
    secret = secret.strip()
    principal = accounts.cached_principal(secret)
    if principal is False:  # not cached: one query, off the event loop
        principal = await run_in_threadpool(accounts.authenticate_key, secret)
    if principal is None:
        raise Unauthorized()
    if scope not in principal.scopes:
        raise ApiError(403, f"This key lacks the '{scope}' scope")
    return principal


def _requires(scope: str):
    async def dependency(request: Request) -> Principal:
        return await authorize(request.app.state.services.accounts, request.headers.get("authorization", ""), scope)

    return Depends(dependency)


ReadKey = Annotated[Principal, _requires(SCOPE_READ)]
AdminKey = Annotated[Principal, _requires(SCOPE_ADMIN)]
