"""One place maps every error to the contract's body: {"error": "<clear message>"}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from admin.services.errors import ServiceError

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None,
                 detail: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers
        self.detail = detail


class Unauthorized(ApiError):
    def __init__(self) -> None:
        super().__init__(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})


def error_response(status_code: int, message: str, headers=None, detail=None) -> JSONResponse:
    body = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status_code, headers=headers)


def validation_detail(exc: ValidationError | RequestValidationError) -> list[dict]:
    """Where and what, without echoing the input back (it may be large or hostile)."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
    else:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


def summarise(detail: list[dict]) -> str:
    first = detail[0] if detail else {"loc": [], "msg": "invalid"}
    where = ".".join(str(p) for p in first["loc"] if p not in ("body", "query")) or "request"
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    return f"Invalid {where}: {first['msg']}{more}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return error_response(exc.status_code, exc.message, exc.headers, exc.detail)

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError):
        return error_response(exc.status_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError):
        detail = validation_detail(exc)
        return error_response(422, summarise(detail), detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError):
        # The database is unreachable or overloaded: tell clients to come back (agents queue).
        log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return error_response(503, "Database unavailable; retry later", {"Retry-After": "10"})

    @app.exception_handler(DBAPIError)
    async def _database_refused(request: Request, exc: DBAPIError):
        # Validation should have caught it; the database is the last line, and it is the
        # request's fault (a value the column cannot hold), not the server's.
        log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
        return error_response(422, "A value in this request cannot be stored")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "Internal server error")
