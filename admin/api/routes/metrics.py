"""Prometheus endpoints: the server's own metrics, and an organisation's machines.

- `GET /metrics`: only when DASHFLEET_METRICS_TOKEN is set (else 404), to a Bearer of that token
  (else 401). The token is the monitoring system's, not an organisation's: it sees no fleet data.
- `GET /api/fleet/metrics`: an organisation's machines, to a key with the `read` scope.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from admin.api.deps import ReadKey, ServicesDep
from admin.api.errors import ApiError, Unauthorized, error_responses
from admin.services import server_metrics

CONTENT_TYPE = server_metrics.CONTENT_TYPE
_TEXT = {200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "Prometheus text format"}}

fleet_router = APIRouter(prefix="/fleet", tags=["metrics"], responses=error_responses(401, 403))
server_router = APIRouter(tags=["metrics"])


@fleet_router.get(
    "/metrics",
    summary="The organisation's machines in Prometheus's text format (read scope)",
    response_class=Response,
    responses=_TEXT,
)
async def fleet_metrics(key: ReadKey, services: ServicesDep) -> Response:
    text = await run_in_threadpool(services.fleet_metrics.render, org_id=key.org_id)
    return Response(text, media_type=CONTENT_TYPE)


@server_router.get(
    "/metrics",
    summary="The server's own metrics (Bearer DASHFLEET_METRICS_TOKEN)",
    response_class=Response,
    responses={**_TEXT, **error_responses(401, 404)},
)
async def own_metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    metrics = server_metrics.get()
    if token is None or metrics is None:
        raise ApiError(404, "Metrics are off: set DASHFLEET_METRICS_TOKEN to serve them")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the answer's timing must not tell how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise Unauthorized()
    return Response(await run_in_threadpool(metrics.render), media_type=CONTENT_TYPE)
