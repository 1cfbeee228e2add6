from fastapi import APIRouter

from admin.api.errors import ApiError
from admin.api.routes import fleet, status

api_router = APIRouter(prefix="/api")
api_router.include_router(status.router)
api_router.include_router(fleet.router)


@api_router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown_api_path(path: str) -> None:
    # Without this, unknown /api/ paths would fall through to the web UI's HTML 404 page.
    raise ApiError(404, f"No API endpoint /api/{path}")
