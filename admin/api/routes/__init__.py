from fastapi import APIRouter, Request, Response

from admin.api.errors import ApiError
from admin.api.routes import agent, alerts, audit, fleet, inbox, messaging, metrics, status

api_router = APIRouter(prefix="/api")
api_router.include_router(status.router)
api_router.include_router(fleet.router)
api_router.include_router(messaging.router)
api_router.include_router(inbox.router)
api_router.include_router(alerts.router)
api_router.include_router(alerts.agent_router)
api_router.include_router(metrics.fleet_router)
api_router.include_router(agent.router)
api_router.include_router(audit.router)


ANY_METHOD = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]


@api_router.api_route("", methods=ANY_METHOD, include_in_schema=False)  # /api itself
@api_router.api_route("/{path:path}", methods=ANY_METHOD, include_in_schema=False)
async def unknown_api_path(request: Request, path: str = "") -> Response:
    # Without this, unknown /api/ paths would fall through to the web UI's HTML 404 page. A known
    # path asked with another method is a 405 that says which methods it takes; OPTIONS lists them.
    # (The API's paths have no parameters, so the OpenAPI schema, built once, tells them exactly.)
    allowed = sorted(m.upper() for m in request.app.openapi()["paths"].get(f"/api/{path}", {}))
    if allowed:
        allow = {"Allow": ", ".join([*allowed, "OPTIONS"])}  # what the path takes, OPTIONS too
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=allow)
        raise ApiError(405, f"{request.method} is not allowed on /api/{path}; use {', '.join(allowed)}", allow)
    raise ApiError(404, f"No API endpoint /api/{path}")
