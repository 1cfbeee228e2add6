"""The fleet API: agents report and ping; scripts list, inspect and delete machines."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from admin.api.agent_handlers import accept_ping, accept_report
from admin.api.deps import AdminKey, ReadKey, ServicesDep, key_actor, too_many
from admin.api.errors import ApiError, error_responses
from admin.core.limits import FLEET_LIST_LIMIT
from admin.services.fleet import HISTORY_MAX_HOURS, FleetFilter
from admin.services.history import RangeName
from admin.services.public import (
    DeletedOut,
    EnrolmentResetOut,
    FleetOut,
    HistoryBucketsOut,
    HistoryOut,
    HistoryRangeOut,
    MachineOut,
    ReportAccepted,
)
from common.constants import MACHINE_ID_MAX_LENGTH, SYSTEM_FIELD_MAX_LENGTH
from common.schemas import PingIn, PingOut, ReportIn

router = APIRouter(prefix="/fleet", tags=["fleet"], responses=error_responses(401, 403, 422))


def _body_schema(model: type[BaseModel]) -> dict:
    # The hot routes parse their own body (strict JSON, one pass); this keeps them documented.
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _accept(request: Request, handler) -> Response:
    body = await handler(request.app.state.services, request.headers.get("authorization", ""), await request.body())
    return Response(to_json(body), media_type="application/json")


@router.post(
    "/report",
    summary="Store a machine's latest report and a history sample",
    openapi_extra=_body_schema(ReportIn),
    response_model=ReportAccepted,
    responses=error_responses(400, 413, 429),
)
async def report(request: Request) -> Response:
    return await _accept(request, accept_report)


@router.post(
    "/ping",
    summary="Heartbeat: mark a machine alive (creating it if new)",
    openapi_extra=_body_schema(PingIn),
    response_model=PingOut,
    responses=error_responses(400, 413, 429),
)
async def ping(request: Request) -> Response:
    return await _accept(request, accept_ping)


# Text parameters reach SQL as bound values; a NUL is refused here (PostgreSQL text cannot hold it).
NO_NUL = r"^[^\x00]*$"
MachineIdQuery = Annotated[str, Query(min_length=1, max_length=MACHINE_ID_MAX_LENGTH, pattern=NO_NUL)]
MAX_OFFSET = 2**31 - 1  # beyond any fleet, and within every database's integer


def _fleet_route(path: str, summary: str) -> None:
    # The return annotations are the routes' response models: FastAPI documents and checks them.
    @router.get(path, summary=summary, responses=error_responses(429))
    async def list_fleet(
        key: ReadKey,
        services: ServicesDep,
        os: Annotated[
            str | None, Query(max_length=SYSTEM_FIELD_MAX_LENGTH, pattern=NO_NUL, description="exact, any case")
        ] = None,
        status: Annotated[Literal["online", "offline"] | None, Query()] = None,
        q: Annotated[
            str | None,
            Query(
                max_length=MACHINE_ID_MAX_LENGTH,
                pattern=NO_NUL,
                description="part of id or hostname, any case (surrounding spaces ignored)",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> FleetOut:
        refusal = await services.limiter.hit(FLEET_LIST_LIMIT, "fleet", key.key_id)
        if refusal:
            raise too_many(refusal, "fleet listings with this key")
        flt = FleetFilter(os=os, status=status, q=(q or "").strip() or None)  # as the web UI's search box
        return await run_in_threadpool(
            services.fleet.list_fleet, org_id=key.org_id, flt=flt, limit=limit, offset=offset
        )


_fleet_route("", "The key's organisation's fleet (expires silent machines first)")
_fleet_route("/public", "The same as GET /api/fleet (kept for the prototype's clients; a key is required)")


@router.get("/machine", summary="One machine of the key's organisation", responses=error_responses(404))
async def get_machine(key: ReadKey, services: ServicesDep, machine_id: MachineIdQuery) -> MachineOut:
    return await run_in_threadpool(services.fleet.machine, org_id=key.org_id, machine_id=machine_id)


HISTORY_PAGE_MAX = 5000


HISTORY_PAGING = ("hours", "limit", "offset", "bucket_seconds")  # the raw-sample forms, not with `range`


@router.get(
    "/machine/history",
    summary="A machine's history: a range charted from its tier, raw samples a page at a time, or their means",
    description="With `range` (hour, day, week, month or year): the server reads the finest tier that holds "
    "the range (raw samples for 48 h, 5-minute buckets for 14 days, hourly buckets for 400 days, by default) "
    "and answers `buckets` of `bucket_seconds` with each metric's mean, min, max and count; `tier` says which "
    "it read. `range` is not combined with `hours`, `limit`, `offset` or `bucket_seconds`. Without `range`, the "
    "raw samples of the last `hours`: `samples`, at most `limit` of them from `offset`; `next_offset` is the "
    "offset of the next page, or null after the last. With `bucket_seconds`: `buckets`, the means of the raw "
    "samples per bucket (`ts` is the bucket's start, `samples` how many it averages).",
    responses=error_responses(404),
)
async def machine_history(
    request: Request,
    key: ReadKey,
    services: ServicesDep,
    machine_id: MachineIdQuery,
    hours: Annotated[float, Query(gt=0, le=HISTORY_MAX_HOURS, allow_inf_nan=False)] = 24,
    limit: Annotated[int, Query(ge=1, le=HISTORY_PAGE_MAX)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    bucket_seconds: Annotated[int | None, Query(ge=60, le=86400)] = None,
    range_name: Annotated[
        RangeName | None, Query(alias="range", description="hour, day, week, month or year: a chart of that span")
    ] = None,
) -> HistoryOut | HistoryBucketsOut | HistoryRangeOut:
    if range_name is not None:
        if given := [name for name in HISTORY_PAGING if name in request.query_params]:
            raise ApiError(422, f"`range` cannot be combined with {', '.join(f'`{n}`' for n in given)}")
        return await run_in_threadpool(
            services.history.chart, org_id=key.org_id, machine_id=machine_id, range_name=range_name
        )
    if bucket_seconds is not None:
        return await run_in_threadpool(
            services.fleet.history_bucketed,
            org_id=key.org_id,
            machine_id=machine_id,
            hours=hours,
            bucket_seconds=bucket_seconds,
        )
    return await run_in_threadpool(
        services.fleet.history, org_id=key.org_id, machine_id=machine_id, hours=hours, limit=limit, offset=offset
    )


@router.delete(
    "/machine", summary="Delete a machine and its history (key scope 'admin')", responses=error_responses(404)
)
async def delete_machine(
    request: Request, key: AdminKey, services: ServicesDep, machine_id: MachineIdQuery
) -> DeletedOut:
    await run_in_threadpool(
        services.fleet.delete_machine, org_id=key.org_id, machine_id=machine_id, actor=key_actor(request, key)
    )
    return DeletedOut(deleted=machine_id)


@router.post(
    "/machine/enrolment/reset",
    summary="Reset a machine's enrolment: revoke its own keys (key scope 'admin')",
    description="The machine's keys (made by `POST /api/agent/enroll`) are revoked at once; its agent enrols "
    "again with the enrol key it was installed with, from any hardware (so a replaced computer can take the "
    "machine id). The machine and its history stay. A machine id the organisation does not have: 404, "
    "nothing changed.",
    responses=error_responses(404),
)
async def reset_enrolment(
    request: Request, key: AdminKey, services: ServicesDep, machine_id: MachineIdQuery
) -> EnrolmentResetOut:
    revoked = await run_in_threadpool(
        services.enrolment.reset, org_id=key.org_id, machine_id=machine_id, actor=key_actor(request, key)
    )
    return EnrolmentResetOut(machine_id=machine_id, revoked_keys=revoked)
