"""One place maps every error to the contract's body: {"error": "<clear message>"}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from admin.services.errors import ServiceError, TooMany
from admin.services.public import ErrorOut

log = logging.getLogger(__name__)


_MEANING = {
    400: "The body is not JSON (or is truncated)",
    401: "Missing, malformed, unknown or revoked key",
    403: "The key lacks the scope this route needs",
    404: "No such machine in the key's organisation",
    409: "The machine id is enrolled from other hardware (an admin removes the machine or resets its enrolment)",
    413: "Body over DASHFLEET_MAX_BODY_BYTES",
    422: "Invalid input: wrong types, missing fields, NaN or out-of-range values, bad parameters",
    429: "Rate limited: Retry-After says how many seconds to wait",
}


def error_responses(*codes: int) -> dict:
    """OpenAPI `responses` for these statuses, each with the contract's error body."""
    return {code: {"model": ErrorOut, "description": _MEANING[code]} for code in codes}


class ApiError(Exception):
    def __init__(
        self, status_code: int, message: str, headers: dict[str, str] | None = None, detail: list[dict] | None = None
    ) -> None:
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


def response_for(exc: Exception, method: str, path: str) -> JSONResponse:
    """The contract's answer to an exception raised while serving `method path`."""
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.message, exc.headers, exc.detail)
    if isinstance(exc, TooMany):
        return error_response(429, exc.message, {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, ServiceError):
        return error_response(exc.status_code, exc.message)
    if isinstance(exc, RequestValidationError):
        detail = validation_detail(exc)
        return error_response(422, summarise(detail), detail=detail)
    if isinstance(exc, StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))
    if isinstance(exc, OperationalError):
        # The database is unreachable or overloaded: tell clients to come back (agents queue).
        log.error("database unavailable on %s %s: %s", method, path, exc.orig)
        return error_response(503, "Database unavailable; retry later", {"Retry-After": "10"})
    if isinstance(exc, DBAPIError):
        # Validation should have caught it; the database is the last line, and it is the
        # request's fault (a value the column cannot hold), not the server's.
        log.warning("database refused a value on %s %s: %s", method, path, exc.orig)
        return error_response(422, "A value in this request cannot be stored")
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return error_response(500, "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return response_for(exc, request.method, request.url.path)

    # Starlette picks the handler of the nearest class in the exception's MRO; `Exception` is
    # answered by its outermost middleware, after which the error is re-raised (and logged).
    for exc_type in (ApiError, ServiceError, RequestValidationError, StarletteHTTPException, DBAPIError, Exception):
        app.add_exception_handler(exc_type, handler)
