"""The HTTP edge: what every request passes before the app reads a byte of its body.

In order, each refusal in the spec's error shape and with `Connection: close`, since the
body it leaves unread must not be taken for the next request:

1. the Host header, when `trusted_hosts` is set: any other host is a 400 HOST_NOT_ALLOWED;
2. for a request with a body, the API key, on every route that needs one: authenticated and
   throttled first, so a 401 or 429 never reads (or waits for) the body, and every later
   answer to the request, a 413 or a 500 included, carries the key's X-RateLimit-* headers
   (a request without a body has its key checked by the route's CurrentKey dependency, the
   same check, once);
3. the body: its declared Content-Length, then every chunk as it streams, whatever the
   framing (413 PAYLOAD_TOO_LARGE the moment the count passes `max_request_bytes`), all of
   it within `http_body_timeout` of the headers (408 REQUEST_TIMEOUT).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comfy_serverless.api.contract import dependency_calls, flat_routes
from comfy_serverless.api.deps import admit_key, current_key
from comfy_serverless.api.errors import (
    api_error_response,
    error_response,
    store_unavailable_response,
)
from comfy_serverless.api.urls import public_base_url
from comfy_serverless.errors import ApiError, StoreError

__all__ = ["EdgeLimits", "HttpEdge", "host_allowed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeLimits:
    max_body_bytes: int
    body_timeout: float
    trusted_hosts: tuple[str, ...] = ()


class HttpEdge:
    def __init__(self, app: ASGIApp, *, limits: EdgeLimits) -> None:
        self._app = app
        self._limits = limits
        self._routes: list[_KeyRoute] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refusal = _host_refusal(scope, self._limits.trusted_hosts)
        if refusal is None and not _has_body(scope):
            # Nothing to read: the key is checked by the route's own dependency.
            await self._app(scope, receive, send)
            return
        exchange = _Exchange(scope, send)
        refusal = (refusal or await self._key_refusal(scope)
                   or _declared_size_refusal(scope, self._limits.max_body_bytes))
        if refusal is not None:
            await exchange.refuse(refusal)
            return
        body = _MeteredBody(receive, exchange, self._limits)
        await self._app(scope, body, exchange.send)

    async def _key_refusal(self, scope: Scope) -> Response | None:
        if not self._needs_key(scope):
            return None
        try:
            await admit_key(scope["app"].state.services, _header(scope, b"authorization"),
                            scope.setdefault("state", {}))
        except ApiError as exc:
            return api_error_response(exc, public_base_url(scope))
        except StoreError as exc:
            log.error("store unavailable checking the key of %s %s: %s", scope["method"],
                      scope["path"], exc)
            return store_unavailable_response()
        return None

    def _needs_key(self, scope: Scope) -> bool:
        """Whether the route the request goes to depends on an API key (its 401 and 429).
        The first route whose path and method match, as the router picks it; a regex match
        per route, not the router's full match (which builds a scope each time)."""
        if self._routes is None:
            self._routes = [_KeyRoute.of(route)
                            for route in flat_routes(scope["app"].router.routes)]
        path, method = scope["path"], scope["method"]
        for route in self._routes:
            if route.serves(scope, path, method):
                return route.needs_key
        return False


@dataclass(frozen=True)
class _KeyRoute:
    route: BaseRoute
    needs_key: bool

    @classmethod
    def of(cls, route: BaseRoute) -> _KeyRoute:
        return cls(route, isinstance(route, APIRoute)
                   and current_key in dependency_calls(route.dependant))

    def serves(self, scope: Scope, path: str, method: str) -> bool:
        if isinstance(self.route, Route):
            return (self.route.path_regex.match(path) is not None
                    and (not self.route.methods or method in self.route.methods))
        return self.route.matches(scope)[0] is Match.FULL


class _Exchange:
    """The response side: once the edge has answered, whatever the app sends is dropped."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self._scope = scope
        self._send = send
        self._started = False
        self._answered = False

    async def send(self, message: Message) -> None:
        if self._answered:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)

    async def refuse(self, response: Response) -> None:
        if not self._started:
            response.headers["Connection"] = "close"
            await response(self._scope, _nothing_to_receive, self._send)
        self._answered = True


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}


class _MeteredBody:
    """`receive`, counting the body's bytes and holding it to one deadline until it ends."""

    def __init__(self, receive: Receive, exchange: _Exchange, limits: EdgeLimits) -> None:
        self._receive = receive
        self._exchange = exchange
        self._limit = limits.max_body_bytes
        self._timeout = limits.body_timeout
        self._deadline = asyncio.get_running_loop().time() + limits.body_timeout
        self._received = 0
        self._complete = False

    async def __call__(self) -> Message:
        if self._complete:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            return await self._refuse(error_response(
                408, "REQUEST_TIMEOUT",
                f"The request body must arrive within {self._timeout:g} seconds",
                {"body_timeout": self._timeout, "received_bytes": self._received}))
        if message["type"] != "http.request":
            return message
        self._received += len(message.get("body", b""))
        if self._received > self._limit:
            return await self._refuse(_too_large(self._limit, {"received_bytes": self._received}))
        self._complete = not message.get("more_body", False)
        return message

    async def _refuse(self, response: Response) -> Message:
        """Answer now; the app, told the client left, stops reading."""
        self._complete = True
        await self._exchange.refuse(response)
        return {"type": "http.disconnect"}


def _too_large(limit: int, measured: dict[str, int]) -> Response:
    return error_response(413, "PAYLOAD_TOO_LARGE",
                          f"Request bodies are limited to {limit} bytes",
                          {"max_bytes": limit, **measured})


def _has_body(scope: Scope) -> bool:
    """Whether the request says a body follows (a Content-Length above 0, or chunks)."""
    length = _header(scope, b"content-length")
    return (length is not None and length != "0") or (
        _header(scope, b"transfer-encoding") is not None)


def _declared_size_refusal(scope: Scope, limit: int) -> Response | None:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _too_large(limit, {"content_length": int(declared)})
    return None


def _host_refusal(scope: Scope, trusted: tuple[str, ...]) -> Response | None:
    if not trusted:
        return None
    host = _hostname(_header(scope, b"host") or "")
    if host_allowed(host, trusted):
        return None
    return error_response(400, "HOST_NOT_ALLOWED", f"This service does not answer for host "
                          f"{host!r}", {"host": host, "header": "Host"})


def host_allowed(host: str, trusted: tuple[str, ...]) -> bool:
    """`example.com` matches itself, `*.example.com` its subdomains, `*` any host."""
    for pattern in trusted:
        pattern = pattern.lower()
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
