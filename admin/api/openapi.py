"""The OpenAPI schema's account of authentication: the fleet routes take an organisation's API key
as a Bearer token (checked by api/deps.py, which FastAPI's security classes would duplicate), so
the schema says so itself, and /api/docs offers an Authorize button for the key."""

from __future__ import annotations

from fastapi import FastAPI

BEARER = "apiKey"


def document_bearer_auth(app: FastAPI, *tags: str) -> None:
    """Mark every operation tagged with one of `tags` as needing the Bearer key."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()  # FastAPI's own, kept as app.openapi_schema
            schema.setdefault("components", {})["securitySchemes"] = {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An organisation's API key (`api_...`), made with `dashfleet-admin key create`",
                }
            }
            for operations in schema["paths"].values():
                for operation in operations.values():
                    if set(tags) & set(operation.get("tags", [])):
                        operation["security"] = [{BEARER: []}]
        return app.openapi_schema

    app.openapi = openapi
