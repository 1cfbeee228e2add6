"""The two requests agents make, answered ahead of the framework.

`POST /api/fleet/report` and `POST /api/fleet/ping` are nearly all of a server's traffic (every
machine, every 60 and 30 s). Routed through FastAPI they paid more for its routing, dependency
and exception machinery than for their own work (docs/benchmarks.md, "Where the time goes"). This
ASGI middleware serves them with the same handlers (api/agent_handlers.py: auth, limits, validation,
storage) and the same error answers (errors.response_for). The FastAPI routes of the same paths
are what OpenAPI documents; they call the same handlers, so either way a request gets the same
answer. Everything else, other methods on these paths included, goes on to the app.

The agents' inbox long poll (`GET /api/agent/inbox`, api/routes/inbox.py) is served here too: with
10,000 agents waiting, each re-asks every 25 s, and through the framework those polls alone took
most of a core (docs/benchmarks.md, "Messages and commands"). So are their delivery state changes
(`POST /api/agent/deliveries/{delivery_id}`): a message to 1,000 waiting agents brings 1,000 of
them within a second.

It sits inside BodyLimitMiddleware, so oversized bodies are refused before any of this runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic_core import to_json
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from admin.api.agent_handlers import accept_ping, accept_report
from admin.api.errors import response_for
from admin.api.routes.inbox import PATH_DELIVERIES, PATH_INBOX, serve_inbox, serve_state
from admin.services.context import AppServices
from common.constants import PATH_PING, PATH_REPORT

Handler = Callable[[AppServices, str, bytes], Awaitable[dict]]
HANDLERS: dict[str, Handler] = {PATH_REPORT: accept_report, PATH_PING: accept_ping}
# GET handlers take the query string: the inbox long poll, which every waiting agent re-asks.
GetHandler = Callable[[AppServices, str, str], Awaitable[dict]]
GET_HANDLERS: dict[str, GetHandler] = {PATH_INBOX: serve_inbox}


class HotRoutes:
    def __init__(self, app: ASGIApp, services: AppServices) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = None
        if scope["type"] == "http" and scope["method"] in ("POST", "GET"):
            path = scope["path"]
            root = scope.get("root_path", "")
            path = path[len(root) :] if root and path.startswith(root) else path
            if scope["method"] == "GET":
                get_handler = GET_HANDLERS.get(path)
                if get_handler is not None:
                    await self._serve_get(get_handler, scope, receive, send)
                    return
            else:
                handler = HANDLERS.get(path)
                if handler is None and path.startswith(PATH_DELIVERIES):
                    delivery_id = path[len(PATH_DELIVERIES) :]
                    if delivery_id and "/" not in delivery_id:  # what the route's {delivery_id} matches
                        await self._serve_state(delivery_id, scope, receive, send)
                        return
        if handler is None:
            await self.app(scope, receive, send)
            return

        body = await _body(receive)
        if body is None:
            return  # the client left; nothing was read, nothing is stored
        try:
            answer = Response(
                to_json(await handler(self.services, _authorization(scope), body)), media_type="application/json"
            )
        except Exception as exc:  # noqa: BLE001 - every error gets the contract's answer
            answer = response_for(exc, scope["method"], scope["path"])
        await answer(scope, receive, send)

    async def _serve_get(self, handler: GetHandler, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            answer = Response(
                to_json(await handler(self.services, _authorization(scope), query)), media_type="application/json"
            )
        except Exception as exc:  # noqa: BLE001 - every error gets the contract's answer
            answer = response_for(exc, scope["method"], scope["path"])
        await answer(scope, receive, send)

    async def _serve_state(self, delivery_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _body(receive)
        if body is None:
            return
        try:
            answer = await serve_state(self.services, _authorization(scope), body, delivery_id)
        except Exception as exc:  # noqa: BLE001 - every error gets the contract's answer
            answer = response_for(exc, scope["method"], scope["path"])
        await answer(scope, receive, send)


async def _body(receive: Receive) -> bytes | None:
    """The request's whole body; None when the client left first."""
    body = b""
    more = True
    while more:  # the body limit's receive raises (and answers 413) when it grows too large
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


def _authorization(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return ""
