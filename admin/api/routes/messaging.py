"""Messages and commands, for admins and readers (flags `messaging` and `commands`).

Each route checks its feature flag first (off: 404, whatever the key or body), then the key's
scope, then parses its own body, so a flag that is off hides every path of its feature.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from admin.api.agent_handlers import parse_body
from admin.api.deps import authorize, key_actor
from admin.api.errors import ApiError, error_responses
from admin.services.accounts import Principal
from admin.services.messaging import COMMAND, MESSAGE, CommandIn, MessageIn, MessagingService
from common.constants import SCOPE_ADMIN, SCOPE_READ

router = APIRouter(tags=["messages and commands"], responses=error_responses(401, 403, 404))
MAX_LIST_LIMIT = 200


class MessageSent(BaseModel):
    message_id: str
    deliveries: int


class CommandSent(BaseModel):
    command_id: str
    deliveries: int


class Cancelled(BaseModel):
    cancelled: int


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body the route parses itself (after the flag and the key are checked)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _service(request: Request, item_type: str) -> MessagingService:
    service: MessagingService = request.app.state.services.messaging
    service.require(item_type)  # first: with the flag off, the path does not exist
    return service


async def _key(request: Request, scope: str) -> Principal:
    return await authorize(request.app.state.services.accounts, request.headers.get("authorization", ""), scope)


def _paging(request: Request) -> tuple[int, int]:
    def number(name: str, default: int, low: int, high: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ApiError(422, f"Invalid {name}: a whole number from {low} to {high}")
        return int(raw)

    return number("limit", 50, 1, MAX_LIST_LIMIT), number("offset", 0, 0, 2**31 - 1)


def _routes(item_type: str, model: type[MessageIn] | type[CommandIn], sent: type[BaseModel]) -> None:
    plural = f"/{item_type}s"
    noun = item_type
    id_param = {"parameters": [{"name": f"{noun}_id", "in": "path", "required": True, "schema": {"type": "string"}}]}

    @router.post(
        plural,
        status_code=201,
        summary=f"Send a {noun} to chosen machines or all (key scope 'admin')",
        openapi_extra=body_schema(model),
        response_model=sent,
        responses=error_responses(400, 413, 422),
        operation_id=f"send_{noun}",
    )
    async def send(request: Request) -> JSONResponse:
        service = _service(request, item_type)
        key = await _key(request, SCOPE_ADMIN)
        _, payload = parse_body(await request.body(), model)
        actor = key_actor(request, key)
        if item_type == MESSAGE:
            done = await service.send_message(org_id=key.org_id, message=payload, actor=actor)
        else:
            done = await service.send_command(org_id=key.org_id, command=payload, actor=actor)
        return JSONResponse({f"{noun}_id": done.item_id, "deliveries": done.deliveries}, status_code=201)

    @router.get(
        plural,
        summary=f"The organisation's {noun}s, newest first, with progress (key scope 'read')",
        responses=error_responses(422),
        operation_id=f"list_{noun}s",
    )
    async def list_items(request: Request) -> dict[str, Any]:
        service = _service(request, item_type)
        key = await _key(request, SCOPE_READ)
        limit, offset = _paging(request)
        return await run_in_threadpool(
            service.list_items, org_id=key.org_id, item_type=item_type, limit=limit, offset=offset
        )

    @router.get(
        plural + f"/{{{noun}_id}}",
        summary=f"One {noun} and the state of its delivery to each machine (key scope 'read')",
        operation_id=f"get_{noun}",
        openapi_extra=id_param,
    )
    async def get_item(request: Request) -> dict[str, Any]:
        service = _service(request, item_type)
        key = await _key(request, SCOPE_READ)
        return await run_in_threadpool(
            service.item, org_id=key.org_id, item_type=item_type, item_id=request.path_params[f"{noun}_id"]
        )

    @router.post(
        plural + f"/{{{noun}_id}}/cancel",
        summary=f"Cancel a {noun}'s deliveries not yet delivered (key scope 'admin')",
        response_model=Cancelled,
        operation_id=f"cancel_{noun}",
        openapi_extra=id_param,
    )
    async def cancel(request: Request) -> dict[str, int]:
        service = _service(request, item_type)
        key = await _key(request, SCOPE_ADMIN)
        cancelled = await run_in_threadpool(
            service.cancel,
            org_id=key.org_id,
            item_type=item_type,
            item_id=request.path_params[f"{noun}_id"],
            actor=key_actor(request, key),
        )
        return {"cancelled": cancelled}


_routes(MESSAGE, MessageIn, MessageSent)
_routes(COMMAND, CommandIn, CommandSent)
