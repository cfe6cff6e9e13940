"""Every request this service makes on a tenant's behalf (a webhook delivery, an input-image
fetch, a model download) goes through here:

- to the very address that the policy checked (credentials in the URL become a Basic
  authorization header) (`CheckedUrl`): the URL's host is replaced by
  that address, while the Host header, TLS SNI and certificate verification still use the
  host name, so a second DNS answer (rebinding) can never move the connection;
- with no redirects followed (a model download follows them one checked request at a
  time, `model_sources/redirects.py`), no proxy from the environment, no compression (a
  reply is read as sent, so a small compressed body cannot unpack into a huge one), and no
  kept-alive connection (each request gets its own, closed when the request ends);
- and a reply is read only as far as the caller asks (`read_capped`), then the connection is
  closed: a receiver that answers with an endless body costs one small buffer.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from comfy_serverless.webhooks.ssrf import CheckedUrl, IPAddress

__all__ = ["OutboundError", "OutboundRequest", "Reply", "outbound_client", "pinned_download",
           "pinned_stream", "read_capped"]

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


@asynccontextmanager
async def pinned_stream(client: httpx.AsyncClient, request: OutboundRequest
                        ) -> AsyncIterator[httpx.Response]:
    """Send `request` to the first checked address; the response's body is not read yet."""
    target = request.checked.target
    headers = {**request.headers, "Host": target.authority, "Accept-Encoding": "identity"}
    parts = urlsplit(target.url)
    auth = ((unquote(parts.username), unquote(parts.password or ""))
            if parts.username is not None else None)
    async with client.stream(
        request.method, _pinned_url(target.url, request.checked.addresses[0]),
        headers=headers, content=request.content, auth=auth,
        extensions={"sni_hostname": target.host},
    ) as response:
        yield response


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """A connection to the checked address whose TLS still names (SNI) and verifies the
    URL's host."""

    def __init__(self, checked: CheckedUrl, tls: ssl.SSLContext, timeout: float) -> None:
        super().__init__(str(checked.addresses[0]), checked.target.port, timeout=timeout,
                         context=tls)
        self._server_name = checked.target.host
        self._tls = tls

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name)


@contextmanager
def pinned_download(checked: CheckedUrl, headers: Mapping[str, str], tls: ssl.SSLContext,
                    timeout: float) -> Iterator[http.client.HTTPResponse]:
    """A blocking GET of a large body (a model) to the first checked address, for a worker
    thread: the same pinning as `pinned_stream` (Host header, SNI and certificate check
    keep the name; no redirect, proxy or decompression), but on the standard library's
    client, whose `readinto` fills a large buffer in C: about twice the throughput of an
    httpx stream on one core (bench.models). `timeout` bounds each socket operation.
    http:// URLs (allowed only when the policy does not require https) connect in clear."""
    target = checked.target
    connection: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(checked, tls, timeout) if target.scheme == "https"
        else http.client.HTTPConnection(str(checked.addresses[0]), target.port,
                                        timeout=timeout))
    parts = urlsplit(target.url)
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for name, value in {**headers, "Host": target.authority,
                            "Accept-Encoding": "identity", "Connection": "close"}.items():
            connection.putheader(name, value)
        connection.endheaders()
        yield connection.getresponse()
    finally:
        connection.close()


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
