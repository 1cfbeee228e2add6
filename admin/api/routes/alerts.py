"""The alerts API: channels, rules and silences (scope `admin` to change, `read` to see), what
fires now, the history, acknowledgements; and an agent's goodbye (scope `agent`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from admin.api.deps import AdminKey, ReadKey, ServicesDep, authorize, check_machine, key_actor
from admin.api.errors import error_responses
from admin.services.accounts import Principal
from admin.services.alerts import AckIn, ChannelIn, ChannelPatch, GoodbyeIn, MachineId, RuleIn, RulePatch, SilenceIn
from common.constants import SCOPE_AGENT

router = APIRouter(prefix="/alerts", tags=["alerts"], responses=error_responses(401, 403, 422))
agent_router = APIRouter(prefix="/agent", tags=["agent"], responses=error_responses(401, 403, 422))

Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
NOT_FOUND = error_responses(404)


async def _agent_key(request: Request) -> Principal:
    return await authorize(request.app.state.services.accounts, request.headers.get("authorization", ""), SCOPE_AGENT)


AgentKey = Annotated[Principal, Depends(_agent_key)]


def _actor(key: Principal) -> str:
    return f"key {key.key_id}"


# -- what fires, what happened ------------------------------------------------------------------------
@router.get("", summary="The alerts firing now (also silenced and unknown ones, with their state)")
async def firing(
    key: ReadKey, services: ServicesDep, machine_id: Annotated[MachineId | None, Query()] = None
) -> dict[str, Any]:
    data = await run_in_threadpool(services.alerts.firing, org_id=key.org_id, machine_id=machine_id)
    return {"data": data}


@router.get("/history", summary="Firings and resolutions, newest first, with their deliveries")
async def history(
    key: ReadKey,
    services: ServicesDep,
    machine_id: Annotated[MachineId | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    return await run_in_threadpool(
        services.alerts.history, org_id=key.org_id, machine_id=machine_id, limit=limit, offset=offset
    )


@router.post("/acknowledge", summary="Acknowledge an alert until it expires (key scope 'admin')", responses=NOT_FOUND)
async def acknowledge(key: AdminKey, services: ServicesDep, body: AckIn) -> dict[str, Any]:
    return await run_in_threadpool(services.alerts.acknowledge, org_id=key.org_id, spec=body, by=_actor(key))


# -- channels -------------------------------------------------------------------------------------------
@router.post("/channels", status_code=201, summary="Add a channel (secrets are never shown again)", responses=NOT_FOUND)
async def create_channel(request: Request, key: AdminKey, services: ServicesDep, body: ChannelIn) -> dict[str, Any]:
    return {
        "channel_id": await run_in_threadpool(
            services.alerts.create_channel, org_id=key.org_id, spec=body, actor=key_actor(request, key)
        )
    }


@router.get("/channels", summary="The organisation's channels, without their secrets")
async def list_channels(key: ReadKey, services: ServicesDep) -> dict[str, Any]:
    return {"data": await run_in_threadpool(services.alerts.channels, org_id=key.org_id)}


@router.patch("/channels/{channel_id}", summary="Change a channel (an omitted secret is kept)", responses=NOT_FOUND)
async def update_channel(
    request: Request, key: AdminKey, services: ServicesDep, channel_id: Id, body: ChannelPatch
) -> dict[str, Any]:
    return await run_in_threadpool(
        services.alerts.update_channel,
        org_id=key.org_id,
        channel_id=channel_id,
        patch=body,
        actor=key_actor(request, key),
    )


@router.delete(
    "/channels/{channel_id}", summary="Delete a channel and what waits to be sent to it", responses=NOT_FOUND
)
async def delete_channel(request: Request, key: AdminKey, services: ServicesDep, channel_id: Id) -> dict[str, Any]:
    await run_in_threadpool(
        services.alerts.delete_channel, org_id=key.org_id, channel_id=channel_id, actor=key_actor(request, key)
    )
    return {"ok": True, "deleted": channel_id}


@router.post("/channels/{channel_id}/test", summary="Send a test notice now; says if it arrived", responses=NOT_FOUND)
async def test_channel(key: AdminKey, services: ServicesDep, channel_id: Id) -> dict[str, Any]:
    return await run_in_threadpool(
        services.alerts.test_channel, org_id=key.org_id, channel_id=channel_id, client=services.notifier.client
    )


# -- rules ----------------------------------------------------------------------------------------------
@router.post("/rules", status_code=201, summary="Add a rule", responses=NOT_FOUND)
async def create_rule(request: Request, key: AdminKey, services: ServicesDep, body: RuleIn) -> dict[str, Any]:
    return {
        "rule_id": await run_in_threadpool(
            services.alerts.create_rule, org_id=key.org_id, spec=body, actor=key_actor(request, key)
        )
    }


@router.get("/rules", summary="The organisation's rules")
async def list_rules(key: ReadKey, services: ServicesDep) -> dict[str, Any]:
    return {"data": await run_in_threadpool(services.alerts.rules, org_id=key.org_id)}


@router.patch("/rules/{rule_id}", summary="Change a rule", responses=NOT_FOUND)
async def update_rule(
    request: Request, key: AdminKey, services: ServicesDep, rule_id: Id, body: RulePatch
) -> dict[str, Any]:
    return await run_in_threadpool(
        services.alerts.update_rule, org_id=key.org_id, rule_id=rule_id, patch=body, actor=key_actor(request, key)
    )


@router.delete("/rules/{rule_id}", summary="Delete a rule; what it told firing is told resolved", responses=NOT_FOUND)
async def delete_rule(request: Request, key: AdminKey, services: ServicesDep, rule_id: Id) -> dict[str, Any]:
    await run_in_threadpool(
        services.alerts.delete_rule, org_id=key.org_id, rule_id=rule_id, actor=key_actor(request, key)
    )
    return {"ok": True, "deleted": rule_id}


# -- silences -------------------------------------------------------------------------------------------
@router.post("/silences", status_code=201, summary="Add a silence (one-off or weekly)", responses=NOT_FOUND)
async def create_silence(request: Request, key: AdminKey, services: ServicesDep, body: SilenceIn) -> dict[str, Any]:
    return {
        "silence_id": await run_in_threadpool(
            services.alerts.create_silence, org_id=key.org_id, spec=body, actor=key_actor(request, key)
        )
    }


@router.get("/silences", summary="The organisation's silences")
async def list_silences(key: ReadKey, services: ServicesDep) -> dict[str, Any]:
    return {"data": await run_in_threadpool(services.alerts.silences, org_id=key.org_id)}


@router.delete("/silences/{silence_id}", summary="End and delete a silence", responses=NOT_FOUND)
async def delete_silence(request: Request, key: AdminKey, services: ServicesDep, silence_id: Id) -> dict[str, Any]:
    await run_in_threadpool(
        services.alerts.delete_silence, org_id=key.org_id, silence_id=silence_id, actor=key_actor(request, key)
    )
    return {"ok": True, "deleted": silence_id}


# -- the agent says goodbye -----------------------------------------------------------------------------
@agent_router.post(
    "/goodbye",
    summary="A clean stop: the machine is away, not offline, until it is heard from again or its "
    "promised return (back_in seconds) is overdue",
    responses=NOT_FOUND,
)
async def goodbye(key: AgentKey, services: ServicesDep, body: GoodbyeIn) -> dict[str, Any]:
    check_machine(key, body.machine_id)  # a machine's own key says goodbye only for its machine
    return await run_in_threadpool(services.alerts.goodbye, org_id=key.org_id, spec=body)
