from fastapi import APIRouter, Request

from admin.api.deps import ServicesDep, too_many
from admin.api.errors import error_responses
from admin.core.limits import CONFIG_LIMIT
from common.version import __version__

router = APIRouter(tags=["status"])


@router.get("/status", summary="Liveness of the server")
@router.head("/status", summary="Liveness of the server, without a body (load balancers' checks)")
async def status() -> dict:
    return {"status": "ok", "version": __version__}


@router.get(
    "/config",
    summary="Settings the web UI and agents follow (the same object the server uses)",
    responses=error_responses(429),
)
async def config(request: Request, services: ServicesDep) -> dict:
    client = request.client.host if request.client else "unknown"
    refusal = await services.limiter.hit(CONFIG_LIMIT, "config", client)
    if refusal:
        raise too_many(refusal, "requests")
    return services.settings.public_config()
