"""Counts and times every HTTP request for `GET /metrics`, outermost of all middleware (so refusals
such as 413 are counted too). Installed only when metrics are on (DASHFLEET_METRICS_TOKEN).

The `route` label is the route's template (`/api/fleet/machine`), never the raw path: machine ids
and unknown paths must not create a time series each. Web UI pages, its assets and its websocket
share the label `ui`; unknown /api/ paths share `/api/other`.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.services.server_metrics import ServerMetrics
from common.constants import PATH_PING, PATH_REPORT

# Answered by the hot-routes middleware, before FastAPI's router could name them.
_HOT_PATHS = {PATH_REPORT, PATH_PING}


def route_label(scope: Scope) -> str:
    path = scope["path"]
    if path in _HOT_PATHS:
        return path
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str) and template.startswith(("/api", "/metrics", "/install", "/downloads")):
        return template if "{path" not in template else "/api/other"
    if path.startswith("/api/"):
        return "/api/other"
    return "ui"


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering
        recorded = False

        def record() -> None:
            nonlocal recorded
            recorded = True
            route = route_label(scope)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Counted before the answer's last bytes leave: a client that has its answer and
                # then scrapes sees its request counted.
                record()
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            if not recorded:
                record()
