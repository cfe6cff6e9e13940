"""`/docs` (Swagger UI) and `/redoc` (ReDoc), working without the internet.

FastAPI's own pages load their scripts, styles and favicon from CDNs, so on a machine
without internet they stay blank. Here every asset comes from the `fastapi-offline`
package (a dependency of the service: Swagger UI 5's bundle and CSS, ReDoc 2's standalone
script, a favicon), served by the app under ASSETS_PATH; the pages name local URLs only.
ReDoc 2 still shows Redocly's logo from its CDN, whatever the options: the pages' Content
Security Policy allows images from the service only, so the browser never asks the CDN
(a request that would fail offline, and tell a third party who reads the docs).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "serve_docs_pages"]

ASSETS_PATH = "/docs-assets"
_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
_OAUTH2_REDIRECT = "/docs/oauth2-redirect"
_IMAGES_FROM_HERE = {"Content-Security-Policy": "img-src 'self' data:"}


def serve_docs_pages(app: FastAPI) -> None:
    """Add /docs, its OAuth2 redirect page, /redoc and their assets (create the app with
    `docs_url=None, redoc_url=None`, so that FastAPI's CDN pages are not served instead)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{_OAUTH2_REDIRECT}",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png")
        page.headers.update(_IMAGES_FROM_HERE)
        return page

    @app.get(_OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png", with_google_fonts=False)
        page.headers.update(_IMAGES_FROM_HERE)
        return page
