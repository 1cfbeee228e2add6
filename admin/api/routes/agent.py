"""Agent requests beyond reports and heartbeats: enrolment (an enrol key buys a machine key)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Request
from limits import parse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from admin.api.deps import EnrolKey, ServicesDep, key_actor, too_many
from admin.api.errors import error_responses
from common.schemas import MachineId, SystemText

router = APIRouter(prefix="/agent", tags=["agent"], responses=error_responses(401, 403, 422))

# Per machine id: an installer retrying is a few a minute; a loop is refused (each enrolment
# writes a key row).
ENROL_LIMIT = parse("10/minute")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("hardware_id must not be blank")
    if not value.isprintable():
        raise ValueError("hardware_id must contain printable characters only")
    return value


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    machine_id: MachineId
    hardware_id: Annotated[SystemText, Field(min_length=1), AfterValidator(_not_blank)]


class EnrolOut(BaseModel):
    machine_id: str
    agent_key: str = Field(description="this machine's own key (scope agent, bound to machine_id); shown once")
    key_id: int


@router.post(
    "/enroll",
    status_code=201,
    summary="Exchange an enrol key for this machine's own key (key scope 'enroll')",
    description="The new key has scope `agent` only and speaks only for `machine_id`. The same machine id "
    "from other hardware gets 409; the same hardware again (a reinstall) gets a new key and the old one "
    "is revoked.",
    response_model=EnrolOut,
    responses=error_responses(400, 409, 413, 429),
)
async def enroll(request: Request, key: EnrolKey, services: ServicesDep, body: EnrolIn) -> EnrolOut:
    refusal = await services.limiter.hit(ENROL_LIMIT, "enrol", key.org_id, body.machine_id)
    if refusal:
        raise too_many(refusal, "enrolments of this machine id")
    await services.admission.admit(org_id=key.org_id, machine_id=body.machine_id, org_quota=key.org_machine_quota)
    enrolled = await run_in_threadpool(
        services.enrolment.enrol,
        org_id=key.org_id,
        machine_id=body.machine_id,
        hardware_id=body.hardware_id,
        actor=key_actor(request, key),
    )
    # Enrolment is the machine's first contact: it is listed at once, as a heartbeat would list it.
    await services.fleet.record_ping(
        org_id=key.org_id, machine_id=body.machine_id, hardware_id=body.hardware_id, now=time.time()
    )
    return EnrolOut(machine_id=enrolled.machine_id, agent_key=enrolled.agent_key, key_id=enrolled.key_id)
