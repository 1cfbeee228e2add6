"""The server's middleware, in one place and one order.

Order matters: the body limit must wrap everything that reads a body (the hot routes read it
themselves), and the hot routes must run before the framework's routing. Starlette runs the
middleware added last first, so `install_middleware` adds them innermost first; `MIDDLEWARE_ORDER`
names them outermost first, and tests/admin/api/test_middleware.py fails if the two ever differ.
Request metrics, when on (DASHFLEET_METRICS_TOKEN), are outermost: refusals are counted too.
"""

from __future__ import annotations

from fastapi import FastAPI

from admin.api.body_limit import BodyLimitMiddleware
from admin.api.hot_routes import HotRoutes
from admin.api.request_metrics import RequestMetrics
from admin.api.security_headers import SecurityHeadersMiddleware
from admin.services import server_metrics
from admin.services.context import AppServices
from admin.services.messaging import DELIVERY_MAX_BODY_BYTES

# Outermost first: what a request meets on its way in.
# The security headers come after the hot routes, so reports and heartbeats never pay for them.
MIDDLEWARE_ORDER: tuple[type, ...] = (RequestMetrics, BodyLimitMiddleware, HotRoutes, SecurityHeadersMiddleware)


def install_middleware(app: FastAPI, services: AppServices) -> None:
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(HotRoutes, services=services)
    max_body_bytes = services.settings.max_body_bytes
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=max_body_bytes,
        # A command's result carries up to 64 KiB of output, which JSON escaping may enlarge.
        larger_limits={"/api/agent/deliveries/": max(max_body_bytes, DELIVERY_MAX_BODY_BYTES)},
    )
    if (metrics := server_metrics.get()) is not None:
        app.add_middleware(RequestMetrics, metrics=metrics)
