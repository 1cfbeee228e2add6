"""GET /downloads/: the agent packages this server holds, each with its SHA-256; no key needed
(install scripts fetch them, and the packages hold no secret)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from admin.api.deps import ServicesDep
from admin.api.errors import ApiError, ErrorOut
from common.version import __version__

router = APIRouter(prefix="/downloads", tags=["downloads"])


@router.get("/", summary="The agent packages this server hands out, with their SHA-256")
async def list_downloads(services: ServicesDep) -> dict:
    # Hashing a new or changed file reads it whole: off the event loop.
    packages = await run_in_threadpool(services.downloads.packages)
    return {"version": __version__, "data": [p.as_dict() for p in packages]}


@router.get(
    "/{name}",
    summary="One package, as listed by GET /downloads/",
    response_class=FileResponse,
    responses={404: {"model": ErrorOut, "description": "No such package on this server"}},
)
async def download(name: str, services: ServicesDep) -> FileResponse:
    path = services.downloads.path_of(name)
    if path is None:
        raise ApiError(404, f"No package {name!r} on this server; GET /downloads/ lists them")
    return FileResponse(path, media_type="application/octet-stream", filename=name)
