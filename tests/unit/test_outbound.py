"""The outbound request path on its own: URL parsing, the pinned connection's headers, and the
capped read (a loopback receiver only)."""

from __future__ import annotations

import ssl

import pytest
from aiohttp import web

from comfy_serverless.outbound_urls import parse_url
from comfy_serverless.webhooks.outbound import (
    OutboundRequest,
    outbound_client,
    pinned_stream,
    read_capped,
)
from comfy_serverless.webhooks.ssrf import (
    UnsafeDestination,
    WebhookPolicy,
    check_destination,
)
from tests.outbound import receiver_at

LOOPBACK = WebhookPolicy(require_https=False, allowed_networks=("127.0.0.1/32",))


@pytest.mark.parametrize(("url", "host", "authority"), [
    ("https://Example.COM/x", "example.com", "example.com"),
    ("https://example.com:443/x", "example.com", "example.com"),
    ("http://example.com:8080/x", "example.com", "example.com:8080"),
    ("https://bücher.example/x", "xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("https://[2606:4700::1]:8443/", "2606:4700::1", "[2606:4700::1]:8443"),
    ("https://user:pw@example.com/x", "example.com", "example.com"),
    ("http://2130706433:8080/x", "127.0.0.1", "127.0.0.1:8080"),
])
def test_a_url_is_parsed_once_into_its_ascii_host_and_authority(
    url: str, host: str, authority: str
) -> None:
    target = parse_url(url)
    assert (target.host, target.authority) == (host, authority)


@pytest.mark.parametrize("url", ["https://xn--.example/", "https://a_b-.example/",
                                 "https://" + "a." * 130 + "example/"])
def test_invalid_host_names_are_refused(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        parse_url(url)


async def test_a_pinned_request_keeps_the_name_and_credentials_and_reads_a_capped_reply(
) -> None:
    seen: dict[str, str] = {}

    async def handle(request: web.Request) -> web.Response:
        seen.update(host=request.headers["Host"],
                    auth=request.headers.get("Authorization", ""),
                    encoding=request.headers.get("Accept-Encoding", ""))
        return web.Response(body=b"y" * 10_000)

    async with receiver_at(handle) as url:
        checked = await check_destination(url.replace("http://", "http://me:s%40cret@"),
                                          LOOPBACK)
        async with (outbound_client(ssl.create_default_context(), 5) as client,
                    pinned_stream(client, OutboundRequest("POST", checked, {}, b"{}"))
                    as response):
            reply = await read_capped(response, 100)
    port = checked.target.port
    assert (reply.status_code, reply.body, reply.truncated) == (200, b"y" * 100, True)
    assert seen == {"host": f"127.0.0.1:{port}", "auth": "Basic bWU6c0BjcmV0",
                    "encoding": "identity"}
