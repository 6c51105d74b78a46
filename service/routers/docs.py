"""The API documentation, offline and behind the API key: ``/openapi.json``, Swagger UI at ``/docs``, ReDoc at
``/redoc``. The pages' scripts and styles ship in the ``fastapi-offline`` package and are served from
``/docs-assets`` (surveillance networks are often offline: a CDN would leave the pages blank). A browser asked for
the key answers with HTTP Basic authentication (the key as the password) and then sends it with every request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from lanp_vad.service.problems import PROBLEM_MEDIA_TYPE
from lanp_vad.service.state import require_api_key_from_browser

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_api_key_from_browser)])


@router.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=f"{root}/openapi.json",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


def typed_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document with every 4xx/5xx answer typed as what the server sends: a ``Problem`` in
    ``application/problem+json`` (FastAPI would declare its own validation-error body in ``application/json``)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in schema["paths"].values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    if status.isdigit() and int(status) >= 400:
                        response["content"] = problem
        for unused in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


def install(app: FastAPI) -> None:
    """Add the documentation routes and their static assets to ``app`` (created with its own docs disabled)."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    app.openapi = lambda: typed_openapi(app)  # type: ignore[method-assign]
