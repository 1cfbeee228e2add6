"""Security headers on every answer of the server: pages, the API and its docs (docs/security.md).

A pure ASGI middleware that only appends headers to the response start. It sits inside the hot
routes' middleware, so reports and heartbeats (answered before it) pay nothing for it.

NiceGUI renders each page with inline scripts and Vue compiles templates in the browser, so the
policy allows 'unsafe-inline' and 'unsafe-eval' for scripts; what it does enforce is that every
script, style, font, image and connection comes from this server, that no other site may frame a
page (clickjacking), and that forms and <base> cannot point elsewhere.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",  # the page's own websocket included (CSP 3: 'self' covers ws/wss)
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers without CSP 2
    (b"referrer-policy", b"same-origin"),  # machine ids in URLs never leave for another site
    (b"cross-origin-opener-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # uvicorn has applied a trusted proxy's X-Forwarded-Proto to the scheme already.
        extra = [*HEADERS, HSTS] if scope.get("scheme") == "https" else HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
