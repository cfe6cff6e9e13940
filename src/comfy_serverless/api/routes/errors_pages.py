"""Serves the page behind every error body's `documentation_url`: /errors/{error_code}."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from comfy_serverless.api.bodies.service import ERROR_PAGE
from comfy_serverless.api.error_catalog import ERRORS, ErrorDoc, documentation_path
from comfy_serverless.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["errors"])
_BY_CODE = {doc.code: doc for doc in ERRORS}


class UnknownErrorCode(ApiError):
    status_code = 404
    error_code = "NOT_FOUND"


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"</head><body>{body}</body></html>")


def _section(doc: ErrorDoc) -> str:
    return (f"<h2 id='{escape(doc.code)}'>{doc.status} {escape(doc.code)}</h2>"
            f"<p><b>When:</b> {escape(doc.when)}</p><p><b>What to do:</b> {escape(doc.fix)}</p>")


@router.get("/errors", response_class=HTMLResponse, responses=ERROR_PAGE)
async def all_errors() -> HTMLResponse:
    items = "".join(f"<li><a href='{documentation_path(doc.code)}'>{doc.status} "
                    f"{escape(doc.code)}</a></li>" for doc in ERRORS)
    return _page("Errors", f"<h1>Errors</h1><ul>{items}</ul>")


@router.get("/errors/{code}", response_class=HTMLResponse, responses=ERROR_PAGE)
async def one_error(code: str) -> HTMLResponse:
    doc = _BY_CODE.get(code)
    if doc is None:
        raise UnknownErrorCode(f"No error code {code!r}", {"known": sorted(_BY_CODE)})
    return _page(doc.code, _section(doc) + "<p><a href='/errors'>All errors</a></p>")
