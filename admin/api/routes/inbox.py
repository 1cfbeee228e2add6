"""The agents' side of messages and commands (PROTOCOL-messages.md): the inbox long poll and the
state changes of each delivery. Key scope `agent`; a key bound to a machine speaks only for it.

With both flags off every path here answers 404; with one off, its items are never served and
state changes for them get 404 (admin/services/messaging.py).
"""

from __future__ import annotations

import math
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from pydantic_core import to_json

from admin.api.agent_handlers import parse_body
from admin.api.deps import authorize, check_machine, too_many
from admin.api.errors import ApiError, ErrorOut, error_responses
from admin.api.routes.messaging import body_schema
from admin.core.limits import DELIVERY_STATE_LIMIT, INBOX_LIMIT
from admin.services.accounts import Principal
from admin.services.context import AppServices
from admin.services.messaging import StateConflict, StateIn
from common.constants import MACHINE_ID_MAX_LENGTH, SCOPE_AGENT

router = APIRouter(prefix="/agent", tags=["agent inbox"], responses=error_responses(401, 403, 404, 422, 429))
MAX_WAIT_SECONDS = 25.0
PATH_INBOX = "/api/agent/inbox"  # also served by api/hot_routes.py
PATH_DELIVERIES = "/api/agent/deliveries/"  # + the delivery id; also served by api/hot_routes.py


class Features(BaseModel):
    messaging: bool
    commands: bool


class InboxOut(BaseModel):
    items: list[dict[str, Any]]
    features: Features


class StateOut(BaseModel):
    ok: Literal[True] = True
    state: str


def bound_machine_id(key: Principal) -> str | None:
    """The machine a machine-bound key (enrolment) speaks for; None for an organisation key."""
    return key.bound_machine_id


def _speaks_for(key: Principal, machine_id: str) -> None:
    # A machine's own key only for its machine id; an organisation key only while its organisation
    # accepts them (the same check as reports and heartbeats).
    check_machine(key, machine_id)


def _machine_id(raw: str | None) -> str:
    if raw is None or not raw:
        raise ApiError(422, "Invalid machine_id: required (1 to 200 printable characters)")
    if len(raw) > MACHINE_ID_MAX_LENGTH or not raw.isprintable() or not raw.strip():
        raise ApiError(422, "Invalid machine_id: 1 to 200 printable characters")
    return raw


def _wait(raw: str | None) -> float:
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not 0 <= wait <= MAX_WAIT_SECONDS:  # NaN fails this too
        raise ApiError(422, f"Invalid wait: seconds from 0 to {MAX_WAIT_SECONDS:.0f}")
    return wait


@router.get(
    "/inbox",
    summary="A machine's queued messages and commands; waits up to `wait` seconds for one (key scope 'agent')",
    response_model=InboxOut,
    openapi_extra={
        "parameters": [
            {"name": "machine_id", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 200}},
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": 0},
                "description": "seconds to hold the request when nothing is queued",
            },
        ]
    },
)
async def inbox(request: Request) -> dict[str, Any]:
    # Served by api/hot_routes.py ahead of the framework (10,000 waiting agents re-ask every 25 s);
    # this route documents it and answers the same.
    return await serve_inbox(request.app.state.services, request.headers.get("authorization", ""), request.url.query)


async def serve_inbox(services: AppServices, authorization: str, query: str) -> dict[str, Any]:
    """GET /api/agent/inbox as a function of the Authorization header and the query string."""
    services.messaging.require_any()  # both flags off: this path does not exist
    key = await authorize(services.accounts, authorization, SCOPE_AGENT)
    params = parse_qs(query, keep_blank_values=True)
    machine_id = _machine_id(_one(params, "machine_id"))
    wait = _wait(_one(params, "wait"))
    _speaks_for(key, machine_id)
    refusal = await services.limiter.hit(INBOX_LIMIT, key.org_id, "inbox", machine_id)
    if refusal:
        raise too_many(refusal, "inbox requests from this machine")
    messaging = services.messaging
    items = await messaging.wait_for_inbox(org_id=key.org_id, machine_id=machine_id, wait=wait)
    features = {"messaging": messaging.enabled("message"), "commands": messaging.enabled("command")}
    return {"items": items, "features": features}


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if values is not None and len(values) > 1:
        raise ApiError(422, f"Invalid {name}: given more than once")
    return values[0] if values else None


@router.post(
    "/deliveries/{delivery_id}",
    summary="A delivery's new state, and a command's result (key scope 'agent')",
    openapi_extra=body_schema(StateIn),
    response_model=StateOut,
    responses={
        **error_responses(400, 413),
        409: {
            "model": ErrorOut,
            "description": "A backward or impossible move, or the delivery expired or was cancelled; "
            'the body also says the state now: {"error": ..., "state": ...}',
        },
    },
)
async def post_state(request: Request, delivery_id: str) -> Response:
    # Served by api/hot_routes.py ahead of the framework (1,000 agents woken at once each post
    # `delivered`); this route documents it and answers the same.
    services: AppServices = request.app.state.services
    return await serve_state(services, request.headers.get("authorization", ""), await request.body(), delivery_id)


async def serve_state(services: AppServices, authorization: str, body: bytes, delivery_id: str) -> Response:
    """POST /api/agent/deliveries/{delivery_id} as a function of the header, the body and the id."""
    services.messaging.require_any()  # both flags off: this path does not exist
    key = await authorize(services.accounts, authorization, SCOPE_AGENT)
    _, payload = parse_body(body, StateIn)
    _speaks_for(key, payload.machine_id)
    refusal = await services.limiter.hit(DELIVERY_STATE_LIMIT, key.org_id, "delivery", payload.machine_id)
    if refusal:
        raise too_many(refusal, "state changes from this machine")
    try:
        state = await services.messaging.accept_state(org_id=key.org_id, delivery_id=delivery_id, state=payload)
    except StateConflict as exc:
        return Response(to_json({"error": exc.message, "state": exc.state}), 409, media_type="application/json")
    return Response(to_json({"ok": True, "state": state}), media_type="application/json")
