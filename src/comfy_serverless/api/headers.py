"""Headers every response carries: the API version's, and an authenticated request's rate limit.

Also the gate for versioned paths: `/v2/…` (any version this service does not serve) is
answered with a 404 that names the supported versions, before any routing.
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comfy_serverless.api.errors import error_response
from comfy_serverless.api.rate_state import rate_headers

__all__ = ["CURRENT_VERSION", "SUPPORTED_VERSIONS", "ApiHeaders", "version_headers"]

CURRENT_VERSION = "v1"
SUPPORTED_VERSIONS = (CURRENT_VERSION,)
_VERSIONED_PATH = re.compile(r"^/(v\d+)(?:/|$)")


def version_headers(*, deprecated: bool, sunset: str | None) -> dict[str, str]:
    return {
        "API-Version": CURRENT_VERSION,
        "API-Deprecated": "true" if deprecated else "false",
        "API-Sunset": sunset or "none",
    }


class ApiHeaders:
    def __init__(self, app: ASGIApp, *, headers: dict[str, str]) -> None:
        """`headers`: the version headers (version_headers()), added to every response."""
        self._app = app
        self._version_headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add_headers(scope, MutableHeaders(scope=message))
            await send(message)

        version = _requested_version(scope["path"])
        if version is not None and version not in SUPPORTED_VERSIONS:
            response = error_response(
                404, "API_VERSION_NOT_FOUND",
                f"API version '{version}' is not served here; use {CURRENT_VERSION}",
                {"requested_version": version, "supported_versions": list(SUPPORTED_VERSIONS),
                 "current_version": CURRENT_VERSION})
            await response(scope, receive, send_with_headers)
            return
        await self._app(scope, receive, send_with_headers)

    def _add_headers(self, scope: Scope, headers: MutableHeaders) -> None:
        for name, value in self._version_headers.items():
            headers[name] = value
        if "x-ratelimit-limit" not in headers:
            for name, value in rate_headers(scope).items():
                headers[name] = value


def _requested_version(path: str) -> str | None:
    match = _VERSIONED_PATH.match(path)
    return match.group(1) if match else None
