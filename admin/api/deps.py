"""Annotated dependencies: each route's needs are visible in its signature."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from admin.api.errors import ApiError, Unauthorized
from admin.core.limits import Refusal
from admin.services.accounts import AccountService, Principal
from admin.services.audit import Actor
from admin.services.context import AppServices
from common.constants import SCOPE_ADMIN, SCOPE_ENROLL, SCOPE_READ


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


def check_machine(principal: Principal, machine_id: str) -> None:
    """403 unless this key may speak for `machine_id`: a machine's own key only for its own id, an
    organisation key only while its organisation accepts unbound keys. Every agent request that
    names a machine calls it (reports, heartbeats, the messages inbox, ...). Costs no query: the
    principal carries both from the cached key lookup."""
    if principal.bound_machine_id is not None:
        if principal.bound_machine_id != machine_id:
            raise ApiError(403, "This key belongs to one enrolled machine and cannot speak for another machine id")
    elif principal.org_requires_enrolment:
        raise ApiError(
            403,
            "This organisation accepts reports and heartbeats only from enrolled machines: enrol this "
            "machine with an enrol key (dashfleet-agent --enroll-token-file) instead of an organisation key",
        )


def _requires(scope: str):
    async def dependency(request: Request) -> Principal:
        return await authorize(request.app.state.services.accounts, request.headers.get("authorization", ""), scope)

    return Depends(dependency)


ReadKey = Annotated[Principal, _requires(SCOPE_READ)]
AdminKey = Annotated[Principal, _requires(SCOPE_ADMIN)]
EnrolKey = Annotated[Principal, _requires(SCOPE_ENROLL)]


def key_actor(request: Request, key: Principal) -> Actor:
    """The audit log's "who": the key, from the client's address (uvicorn resolves the proxy's
    X-Forwarded-For from trusted proxies only)."""
    return Actor.key(key.key_id, request.client.host if request.client else None)
