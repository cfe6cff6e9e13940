"""A tenant who hands the service URLs: internal addresses in every spelling (issue #12 item 5),
and malformed URLs in every field that takes one (item 24).

The address table never connects anywhere: the policy decides from the address alone (a
socket that tries to connect fails the test). The malformed table goes through the HTTP API
of the running service, field by field.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from comfy_serverless.outbound_urls import destination_of
from comfy_serverless.webhooks.ssrf import (
    UnsafeDestination,
    WebhookPolicy,
    check_destination,
)

NO_ALLOWLIST = WebhookPolicy(require_https=False)
LOOPBACK_ALLOWED = WebhookPolicy(require_https=False, allowed_networks=("127.0.0.1/32",))

REFUSED = [
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://100.100.100.200/latest/meta-data",  # a cloud metadata address in CGNAT
    "http://169.254.169.254/latest/meta-data",
    "http://[fd00:ec2::254]/latest/meta-data",  # unique local (AWS IPv6 metadata)
    "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/",
    "http://127.0.0.2/", "http://[::1]/", "http://0.0.0.0/", "http://[::]/", "http://0/",
    "http://192.0.0.8/", "http://192.0.2.1/", "http://198.18.0.1/", "http://198.51.100.7/",
    "http://203.0.113.9/", "http://240.0.0.1/", "http://255.255.255.255/",
    "http://224.0.0.1/", "http://239.255.255.250/", "http://[ff02::1]/",
    "http://[fe80::1]/", "http://[fc00::1]/", "http://[2001:db8::1]/", "http://[100::1]/",
    "http://[fec0::1]/", "http://[3fff::1]/", "http://192.88.99.1/", "http://192.0.0.9/",
    "https://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
    "http://[::ffff:10.0.0.1]/", "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped
    "http://[::127.0.0.2]/", "http://[::10.0.0.1]/",  # IPv4-compatible
    "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:2]/",  # NAT64 well-known prefix
    "http://[64:ff9b:1::a00:1]/",  # NAT64 local-use prefix
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://2130706434/", "http://0x7f000002/", "http://0177.0.0.2/", "http://127.2/",
    "http://0x7f.0.0.2/", "http://017700000002/",  # numeric spellings of 127.0.0.2
    "http://[fe80::1%25eth0]/",  # a zone id
    "http://localhost/",
]

PUBLIC = [
    "https://93.184.215.14/hook", "https://8.8.8.8/", "https://[2606:4700:4700::1111]/",
    "https://[64:ff9b::808:808]/",  # NAT64 of 8.8.8.8
    "https://[2002:808:808::]/",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("url", REFUSED)
@pytest.mark.usefixtures("no_connections")
async def test_internal_addresses_are_refused_in_every_spelling(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        await check_destination(url, NO_ALLOWLIST)


# localhost is left out: it may resolve to 127.0.0.1 alone, which this policy allows.
@pytest.mark.parametrize("url", [u for u in REFUSED if u != "http://localhost/"])
@pytest.mark.usefixtures("no_connections")
async def test_allowing_loopback_allows_nothing_else(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        await check_destination(url, LOOPBACK_ALLOWED)


@pytest.mark.parametrize("url", PUBLIC)
@pytest.mark.usefixtures("no_connections")
async def test_public_addresses_pass(url: str) -> None:
    checked = await check_destination(url, WebhookPolicy())
    assert len(checked.addresses) == 1


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://2130706433/", "http://127.1/", "http://0x7f.1/",
    "http://[::ffff:127.0.0.1]/",
])
@pytest.mark.usefixtures("no_connections")
async def test_an_allowed_network_is_the_only_exception(url: str) -> None:
    checked = await check_destination(url, LOOPBACK_ALLOWED)
    assert [str(a).removeprefix("::ffff:") for a in checked.addresses] == ["127.0.0.1"]


# --------------------------------------------------------------------------- malformed URLs

MALFORMED = [
    "https://[::1",
    "https://127.0.0.1:99999/x",
    "https://a..b/x",
    "https://" + "a" * 70 + ".example/x",
    "https://[fe80::1%25eth0]/x",
    "https:///x",
    "https://exa mple.com/x",
]


def _load_image(url: str) -> dict[str, Any]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": url}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage",
                  "inputs": {"filename_prefix": "url", "images": ["2", 0]}}}


_SIMPLE = {"1": {"class_type": "EmptyImage",
                 "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1}},
           "2": {"class_type": "SaveImage",
                 "inputs": {"filename_prefix": "url", "images": ["1", 0]}}}


async def _answer(client: httpx.AsyncClient, field: str, url: str) -> httpx.Response:
    execute = "/v1/workflows/execute"
    if field == "notification_config.webhook_url":
        return await client.post(execute, json={
            "workflow": _SIMPLE, "notification_config": {"webhook_url": url}})
    if field == "X-Webhook-URL":
        return await client.post(execute, json={"workflow": _SIMPLE},
                                 headers={"X-Webhook-URL": url})
    if field == "url":
        return await client.post("/v1/webhooks", json={"url": url,
                                                      "events": ["system.maintenance"]})
    return await client.post(execute, json={"workflow": _load_image(url)})


@pytest.mark.parametrize("url", MALFORMED)
@pytest.mark.parametrize("field", [
    "notification_config.webhook_url", "X-Webhook-URL", "url", "LoadImage.image"])
async def test_a_malformed_url_is_a_400_naming_its_field(
    tenant_a: httpx.AsyncClient, field: str, url: str
) -> None:
    response = await _answer(tenant_a, field, url)
    body = response.json()
    assert response.status_code == 400, body
    assert body["status"] == "error"
    if field == "LoadImage.image":
        assert body["error_code"] == "WORKFLOW_VALIDATION_FAILED"
        assert "Input image 'image' refused" in body["message"], body
    else:
        assert body["error_code"] == "INVALID_WEBHOOK_URL"
        assert body["details"]["field"] == field, body


def test_every_spelling_of_one_receiver_is_one_destination() -> None:
    spellings = ["https://h.example/", "https://a@h.example/", "https://b:pw@h.example/x",
                 "https://h.example:443/y?z", "https://h.example./", "https://H.EXAMPLE/#f",
                 "HTTPS://h.example"]
    assert {destination_of(url) for url in spellings} == {"https://h.example:443"}
    assert destination_of("http://h.example/") == "http://h.example:80"
    assert destination_of("https://[::FFFF:8.8.8.8]/") == "https://8.8.8.8:443"
    assert destination_of("https://bücher.example/") == "https://xn--bcher-kva.example:443"
