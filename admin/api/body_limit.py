"""Refuses request bodies over DASHFLEET_MAX_BODY_BYTES with 413, before anything reads them.

A pure ASGI middleware (not BaseHTTPMiddleware) so the hot path pays almost nothing. Bodies sent
without Content-Length (chunked) are counted as they arrive. FastAPI's own `max_body_size` is not
used: it answers an oversized Content-Length with text/plain, and the contract wants JSON errors.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(HTTPException):
    """An HTTPException, so the app's own handler answers 413 when a route is reading the body."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, larger_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger_limits = larger_limits or {}  # path prefix -> its own limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        if self.larger_limits:
            for prefix, larger in self.larger_limits.items():
                if scope["path"].startswith(prefix):
                    limit = larger
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = False  # the server rejects a malformed length itself
                if too_large:
                    await self._refuse(send, limit)
                    return
                break

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(413, self._message(limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)

    def _message(self, limit: int) -> str:
        return f"Request body too large (limit {limit} bytes)"

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps({"error": self._message(limit)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
