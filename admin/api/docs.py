"""/api/docs: Swagger UI served from this server's own files (the swagger-ui-py package ships
Swagger UI 5, which reads the OpenAPI 3.1 that FastAPI writes), not from a CDN: the page works
offline and the content security policy admits only 'self'."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/docs"
ASSETS_PATH = "/api/docs-assets"


def serve_api_docs(app: FastAPI, *, openapi_url: str) -> None:
    """Mount the assets and the page; call before the API router (its catch-all answers /api/...)."""
    assets = files("swagger_ui") / "static"
    app.mount(ASSETS_PATH, StaticFiles(directory=str(assets)), name="api-docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            # No badge fetched from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
