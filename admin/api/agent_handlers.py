"""What agents call, as functions of the Authorization header and the body.

`api/hot_routes.py` serves them ahead of the framework (they carry the fleet's traffic); the FastAPI
routes of the same paths (`api/routes/fleet.py`) document them in OpenAPI and call the same
functions, so either way a request gets the same answer.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from admin.api.deps import authorize, check_machine, too_many
from admin.api.errors import ApiError, summarise, validation_detail
from admin.services.context import AppServices
from common.constants import SCOPE_AGENT
from common.schemas import NonFiniteNumber, PingIn, ReportIn, parse_json

Model = TypeVar("Model", bound=BaseModel)


def parse_body(body: bytes, model: type[Model]) -> tuple[Any, Model]:
    """The raw JSON and the validated model of a body: one strict parse (NaN/Infinity refused)."""
    try:
        raw = parse_json(body)
    except NonFiniteNumber as exc:
        raise ApiError(422, str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, f"Body is not valid JSON: {exc}") from None
    try:
        return raw, model.model_validate(raw)
    except ValidationError as exc:
        detail = validation_detail(exc)
        raise ApiError(422, summarise(detail), detail=detail) from None


async def accept_report(services: AppServices, authorization: str, body: bytes) -> dict[str, Any]:
    key = await authorize(services.accounts, authorization, SCOPE_AGENT)
    raw, payload = parse_body(body, ReportIn)
    check_machine(key, payload.machine_id)
    refusal = await services.limiter.hit(services.limiter.report, key.org_id, "report", payload.machine_id)
    if refusal:
        raise too_many(refusal, "reports from this machine")
    await services.admission.admit(org_id=key.org_id, machine_id=payload.machine_id, org_quota=key.org_machine_quota)
    now = time.time()
    dropped = await services.fleet.record_report(
        org_id=key.org_id, machine_id=payload.machine_id, report=raw["report"], now=now
    )
    answer: dict[str, Any] = {"ok": True, "machine_id": payload.machine_id, "timestamp": now}
    if dropped:
        answer["dropped_fields"] = dropped  # unknown fields beyond UNKNOWN_FIELDS_MAX_BYTES
    return answer


async def accept_ping(services: AppServices, authorization: str, body: bytes) -> dict[str, Any]:
    key = await authorize(services.accounts, authorization, SCOPE_AGENT)
    _, payload = parse_body(body, PingIn)
    check_machine(key, payload.machine_id)
    refusal = await services.limiter.hit(services.limiter.ping, key.org_id, "ping", payload.machine_id)
    if refusal:
        raise too_many(refusal, "heartbeats from this machine")
    await services.admission.admit(org_id=key.org_id, machine_id=payload.machine_id, org_quota=key.org_machine_quota)
    now = time.time()
    await services.fleet.record_ping(
        org_id=key.org_id, machine_id=payload.machine_id, hardware_id=payload.hardware_id, now=now
    )
    offset = None if payload.timestamp is None else now - payload.timestamp
    answer: dict[str, Any] = {"ok": True, "timestamp": now, "server_time_offset": offset}
    messaging = services.messaging
    if messaging.enabled_types() and await messaging.has_queued(org_id=key.org_id, machine_id=payload.machine_id):
        answer["inbox"] = True  # something waits: the agent asks its inbox (PROTOCOL-messages.md)
    return answer
