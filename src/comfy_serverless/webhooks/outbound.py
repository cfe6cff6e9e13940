"""Every request this service makes on a tenant's behalf (a webhook delivery, an input-image
fetch) goes through here:

- to the very address that the policy checked (credentials in the URL become a Basic
  authorization header) (`CheckedUrl`): the URL's host is replaced by
  that address, while the Host header, TLS SNI and certificate verification still use the
  host name, so a second DNS answer (rebinding) can never move the connection;
- with no redirects, no proxy from the environment, no compression (a reply is read as sent,
  so a small compressed body cannot unpack into a huge one), and no kept-alive connection
  (each request gets its own, closed when the request ends);
- and a reply is read only as far as the caller asks (`read_capped`), then the connection is
  closed: a receiver that answers with an endless body costs one small buffer.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from comfy_serverless.webhooks.ssrf import CheckedUrl, IPAddress

__all__ = ["OutboundError", "OutboundRequest", "Reply", "outbound_client",
           "outbound_sync_client", "pinned_stream", "pinned_stream_sync", "read_capped"]

OutboundError = httpx.HTTPError


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    checked: CheckedUrl
    headers: Mapping[str, str]
    content: bytes | None = None


@dataclass(frozen=True)
class Reply:
    status_code: int
    headers: httpx.Headers
    body: bytes
    truncated: bool


def outbound_client(tls: ssl.SSLContext, timeout: float) -> httpx.AsyncClient:
    """A client for pinned requests; share one per component (its TLS context is costly)."""
    return httpx.AsyncClient(
        verify=tls, timeout=timeout, follow_redirects=False, trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0))


def _pinned_url(url: str, address: IPAddress) -> str:
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def outbound_sync_client(tls: ssl.SSLContext, timeout: float) -> httpx.Client:
    """The blocking twin of `outbound_client`, for a large body read in a worker thread
    (a model download): blocking TLS reads skip the event loop's SSL layer and run about
    twice as fast (bench.models)."""
    return httpx.Client(
        verify=tls, timeout=timeout, follow_redirects=False, trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0))


def _pinned_call(request: OutboundRequest) -> dict[str, Any]:
    """The arguments of `client.stream` that send `request` to its first checked address,
    with the host name kept for the Host header, SNI and the certificate check."""
    target = request.checked.target
    headers = {**request.headers, "Host": target.authority, "Accept-Encoding": "identity"}
    parts = urlsplit(target.url)
    auth = ((unquote(parts.username), unquote(parts.password or ""))
            if parts.username is not None else None)
    return {"method": request.method,
            "url": _pinned_url(target.url, request.checked.addresses[0]),
            "headers": headers, "content": request.content, "auth": auth,
            "extensions": {"sni_hostname": target.host}}


@asynccontextmanager
async def pinned_stream(client: httpx.AsyncClient, request: OutboundRequest
                        ) -> AsyncIterator[httpx.Response]:
    """Send `request` to the first checked address; the response's body is not read yet."""
    async with client.stream(**_pinned_call(request)) as response:
        yield response


@contextmanager
def pinned_stream_sync(client: httpx.Client, request: OutboundRequest
                       ) -> Iterator[httpx.Response]:
    """`pinned_stream` for a blocking client (call it from a worker thread)."""
    with client.stream(**_pinned_call(request)) as response:
        yield response


async def read_capped(response: httpx.Response, max_bytes: int) -> Reply:
    """At most `max_bytes` of the body, as sent; the rest is never read."""
    body = bytearray()
    truncated = False
    async for chunk in response.aiter_raw():
        body += chunk[:max_bytes - len(body)]
        if len(body) >= max_bytes:
            truncated = True
            break
    return Reply(response.status_code, response.headers, bytes(body), truncated)
