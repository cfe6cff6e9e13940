"""Every error from every route, the framework's own included, in the spec's error shape.

Domain errors (ApiError) carry their status and body; this module is the one place that
turns them, and everything else, into HTTP responses. No stack trace reaches a client.
"""

from __future__ import annotations

import logging
import secrets
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from comfy_serverless.api.contract import allowed_methods
from comfy_serverless.api.rate_state import rate_headers
from comfy_serverless.api.urls import public_base_url
from comfy_serverless.errors import ApiError, StorageError, StoreError

__all__ = [
    "api_error_response",
    "error_response",
    "install_error_handlers",
    "store_unavailable_response",
]

log = logging.getLogger(__name__)

_STORE_RETRY_AFTER = 5
_CODES_BY_STATUS = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE_ENTITY",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
}


def error_response(
    status_code: int, error_code: str, message: str, details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"status": "error", "error_code": error_code, "message": message,
            "details": details or {}}
    return JSONResponse(body, status_code=status_code, headers=headers)


def api_error_response(exc: ApiError, base_url: str) -> JSONResponse:
    """A domain error's answer; a relative documentation_url is made absolute on base_url."""
    body = exc.body()
    link = body.get("documentation_url")
    if isinstance(link, str) and link.startswith("/"):
        body["documentation_url"] = base_url.rstrip("/") + link
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers or None)


def store_unavailable_response() -> JSONResponse:
    return error_response(503, "STORE_UNAVAILABLE", "The database is unavailable; retry shortly",
                          {"retry_after": _STORE_RETRY_AFTER},
                          {"Retry-After": str(_STORE_RETRY_AFTER)})


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return api_error_response(exc, public_base_url(request.scope))


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return store_unavailable_response()


async def _storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("storage failed on %s %s: %s", request.method, request.url.path, exc)
    return error_response(502, "STORAGE_UNAVAILABLE",
                          "The output storage did not answer as expected; retry shortly",
                          {"retry_after": _STORE_RETRY_AFTER},
                          {"Retry-After": str(_STORE_RETRY_AFTER)})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, HTTPStatus(exc.status_code).phrase.upper())
    details: dict[str, Any] = {"path": request.url.path, "method": request.method}
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.scope))
    return error_response(exc.status_code, code, message, details, headers or None)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": _field(error), "error": error.get("msg", "invalid"),
         "type": error.get("type", "")}
        for error in exc.errors()
    ]
    return error_response(400, "INVALID_REQUEST", "The request body or parameters are invalid",
                          {"validation_errors": problems})


def _field(error: dict[str, Any]) -> str:
    """Where the error is: its location, and the path within it a check named (ctx.field)."""
    path = ".".join(str(part) for part in error.get("loc", ()))
    inner = (error.get("ctx") or {}).get("field")
    return f"{path}.{inner}" if isinstance(inner, str) and path else path


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    incident = f"inc_{secrets.token_hex(6)}"
    log.exception("unhandled error %s on %s %s", incident, request.method, request.url.path)
    # Answered outside every middleware (Starlette's ServerErrorMiddleware), so the
    # headers that every response carries are added here.
    headers: dict[str, str] = {**getattr(request.app.state, "response_headers", {}),
                               **rate_headers(request.scope)}
    return error_response(500, "INTERNAL_ERROR", "An unexpected error occurred",
                          {"incident_id": incident}, headers or None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StoreError, _store_unavailable)
    app.add_exception_handler(StorageError, _storage_unavailable)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
