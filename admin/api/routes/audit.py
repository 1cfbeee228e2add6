"""The audit log, read through the API: `GET /api/audit` (key scope `admin`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from admin.api.deps import AdminKey, ServicesDep
from admin.api.errors import error_responses

router = APIRouter(prefix="/audit", tags=["audit"], responses=error_responses(401, 403, 422))

FilterText = Annotated[str | None, Query(max_length=200, description="part of it, any case")]


class AuditEntryOut(BaseModel):
    at: float
    actor: str
    address: str | None
    action: str
    target: str
    detail: dict[str, Any]


class AuditOut(BaseModel):
    count: int
    data: list[AuditEntryOut]


@router.get("", summary="The organisation's audit log, newest first (key scope 'admin')")
async def audit_log(
    key: AdminKey,
    services: ServicesDep,
    actor: FilterText = None,
    action: FilterText = None,
    target: FilterText = None,
    since: Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="Unix time, inclusive")] = None,
    until: Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="Unix time, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditOut:
    page = await run_in_threadpool(
        services.audit.entries,
        org_id=key.org_id,
        actor=actor,
        action=action,
        target=target,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return AuditOut.model_validate(page)
