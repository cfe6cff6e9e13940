"""Redirects followed one checked hop at a time (model_sources/redirects.py), on loopback
servers only: a "hub" on 127.0.0.1 that redirects, and a "CDN" reached by the name
`cdn.models.test`, which this module's resolver answers with 127.0.0.1 (or with an internal
address, to see a hop refused). Both serve a certificate of this module's own CA naming
127.0.0.1 and that name."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.access.tiers import Tier
from comfy_serverless.executions.fetched_models import host_check
from comfy_serverless.model_sources import (
    HostCredential,
    ModelUnavailable,
    Secret,
    SourcePolicy,
    SourceRefused,
    Transport,
    hub_credential,
    parse_source,
)
from comfy_serverless.model_sources.redirects import MAX_REDIRECTS
from comfy_serverless.models.listing import fleet_models, visible_models
from comfy_serverless.store.models import FileSource, FleetModelFile, ModelFile
from comfy_serverless.webhooks.ssrf import WebhookPolicy
from tests.model_files import cache_for, file_body, leftovers, sha
from tests.range_server import RangeServer, range_server
from tests.tls_server import LocalCertificates, make_certificates

CDN = "cdn.models.test"
LOOPBACK = WebhookPolicy(allowed_networks=("127.0.0.1/32",))
POLICY = SourcePolicy(LOOPBACK, allowed_hosts=("127.0.0.1",))  # the CDN is not listed


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> LocalCertificates:
    return make_certificates(tmp_path_factory.mktemp("redirect-tls"), names=(CDN,))


@pytest.fixture(scope="module")
def hub(certificates: LocalCertificates) -> Iterator[RangeServer]:
    with range_server(certificates) as server:
        yield server


@pytest.fixture(scope="module")
def cdn(certificates: LocalCertificates) -> Iterator[RangeServer]:
    with range_server(certificates) as server:
        yield server


@pytest.fixture
def transport(certificates: LocalCertificates) -> Transport:
    return Transport(ssl.create_default_context(cafile=str(certificates.ca_bundle)),
                     timeout=10, chunk_bytes=1 << 14)


@pytest.fixture
def cdn_resolves_to(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What the CDN's name resolves to (127.0.0.1 unless a test changes it); any other
    name that is not a literal address fails the test."""
    answer = {"address": "127.0.0.1"}
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == CDN:
            return real(answer["address"], port, *args, **kwargs)
        if host not in ("127.0.0.1", b"127.0.0.1"):
            raise AssertionError(f"looked up {host!r}")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return answer


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address a socket connected to, in order. Only loopback connections happen:
    any other fails the test before it is made (the addresses a test names are data)."""
    made: list[str] = []
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        made.append(str(address[0]))
        if str(address[0]) not in ("127.0.0.1", "::1"):
            raise AssertionError(f"tried to connect to {address[0]}")
        real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return made


def _on_cdn(cdn: RangeServer, path: str) -> str:
    return cdn.base_url.replace("127.0.0.1", CDN) + path


async def test_an_hf_source_follows_the_hub_to_its_cdn_with_the_token_sent_to_the_hub_only(
        hub: RangeServer, cdn: RangeServer, transport: Transport, tmp_path: Path,
        cdn_resolves_to: dict[str, str]) -> None:
    body = file_body("hf-cdn", 200_000)
    cdn.serve("/blobs/abc?signature=s3cr3t", body)
    hub.redirect("/acme/sd/resolve/main/unet/model.safetensors",
                 _on_cdn(cdn, "/blobs/abc?signature=s3cr3t"))
    source = parse_source("hf://acme/sd/unet/model.safetensors", sha256=sha(body),
                          hf_endpoint=hub.base_url)
    token = hub_credential(hub.base_url, Secret("hf_token_value"))
    everywhere = HostCredential("*", Secret("Bearer for-any-host"), header="X-Api-Key")
    policy = SourcePolicy(LOOPBACK, allowed_hosts=("127.0.0.1",),
                          credentials=(token, everywhere))
    model = await cache_for(tmp_path, transport).fetch(source, policy)
    assert model.path.read_bytes() == body
    assert hub.headers[-1]["Authorization"] == "Bearer hf_token_value"
    assert hub.headers[-1]["X-Api-Key"] == "Bearer for-any-host"
    sent_to_cdn = cdn.headers[-1]
    assert sent_to_cdn["Host"] == f"{CDN}:{cdn.base_url.rsplit(':', 1)[1]}"
    assert "Authorization" not in sent_to_cdn
    assert "X-Api-Key" not in sent_to_cdn  # its glob matches the CDN: still not forwarded


async def test_a_redirect_on_the_same_origin_keeps_the_credentials(
        hub: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("same-origin", 50_000)
    hub.serve("/moved/new.ckpt", body)
    url = hub.redirect("/moved/old.ckpt", "/moved/new.ckpt", status=301)
    policy = SourcePolicy(LOOPBACK, allowed_hosts=("127.0.0.1",),
                          credentials=(HostCredential("127.0.0.1", Secret("Bearer own")),))
    model = await cache_for(tmp_path, transport).fetch(parse_source(url), policy)
    assert model.path.read_bytes() == body
    assert [headers["Authorization"] for headers in hub.headers[-2:]] == ["Bearer own"] * 2


async def test_a_hop_back_to_the_origin_from_elsewhere_carries_no_credentials(
        hub: RangeServer, cdn: RangeServer, transport: Transport, tmp_path: Path,
        cdn_resolves_to: dict[str, str]) -> None:
    body = file_body("back-home", 20_000)
    hub.serve("/home/private.ckpt", body)
    cdn.redirect("/bounce", hub.base_url + "/home/private.ckpt")
    url = hub.redirect("/home/start.ckpt", _on_cdn(cdn, "/bounce"))
    policy = SourcePolicy(LOOPBACK, allowed_hosts=("127.0.0.1",),
                          credentials=(HostCredential("127.0.0.1", Secret("Bearer own")),))
    model = await cache_for(tmp_path, transport).fetch(parse_source(url), policy)
    assert model.path.read_bytes() == body
    first, back = hub.headers[-2:]
    assert first["Authorization"] == "Bearer own"
    assert "Authorization" not in back
    assert "Authorization" not in cdn.headers[-1]


@pytest.mark.parametrize(("location", "reason"), [
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254, an internal address"),
    ("http://127.0.0.1:9/plain.ckpt", "no downgrade from https"),
    (f"https://{CDN}/blob", "169.254.169.254, an internal address"),  # resolved again
    ("https://user:password@127.0.0.1:9/blob", "a URL with user info"),
])
async def test_a_redirect_to_a_refused_destination_is_refused_before_connecting(
        hub: RangeServer, transport: Transport, tmp_path: Path, location: str, reason: str,
        cdn_resolves_to: dict[str, str], connections: list[str]) -> None:
    cdn_resolves_to["address"] = "169.254.169.254"
    url = hub.redirect(f"/refused/{sha(location.encode())[:12]}.ckpt", location)
    with pytest.raises(SourceRefused, match=reason):
        await cache_for(tmp_path, transport).fetch(parse_source(url), POLICY)
    assert connections == ["127.0.0.1"]  # the hub only
    assert leftovers(tmp_path) == []


async def test_more_than_five_redirects_fail_and_five_are_followed(
        hub: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("hops", 10_000)
    for hop in range(MAX_REDIRECTS + 1):
        hub.redirect(f"/hops/{hop}", f"/hops/{hop + 1}", status=(302, 307, 308)[hop % 3])
    hub.serve(f"/hops/{MAX_REDIRECTS + 1}", body)
    cache = cache_for(tmp_path, transport)
    with pytest.raises(ModelUnavailable, match="redirected more than 5 times") as caught:
        await cache.fetch(parse_source(hub.base_url + "/hops/0"), POLICY)
    assert caught.value.retryable is False
    assert hub.hits[f"/hops/{MAX_REDIRECTS + 1}"] == 0
    model = await cache.fetch(parse_source(hub.base_url + "/hops/1"), POLICY)
    assert model.path.read_bytes() == body


async def test_a_resumed_download_asks_the_redirect_target_for_the_rest(
        hub: RangeServer, cdn: RangeServer, transport: Transport, tmp_path: Path,
        cdn_resolves_to: dict[str, str]) -> None:
    body = file_body("resume-cdn", 300_000)
    cdn.serve("/blobs/resume", body, drop_after=120_000)
    url = hub.redirect("/resume/model.ckpt", _on_cdn(cdn, "/blobs/resume"))
    source = parse_source(url, sha256=sha(body))
    cache = cache_for(tmp_path, transport)
    with pytest.raises(ModelUnavailable):
        await cache.fetch(source, POLICY)
    kept = cache.layout.partial(source).stat().st_size
    assert 0 < kept <= 120_000
    model = await cache.fetch(source, POLICY)
    assert model.path.read_bytes() == body
    assert (hub.ranges[-1], cdn.ranges[-1]) == (f"bytes={kept}-", f"bytes={kept}-")


async def test_an_https_source_never_follows_a_redirect_down_to_plain_http(
        hub: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("downgrade", 5000)
    lenient = SourcePolicy(WebhookPolicy(require_https=False,
                                         allowed_networks=("127.0.0.1/32",)),
                           allowed_hosts=("127.0.0.1",))
    with range_server(None) as plain:
        plain.serve("/plain/m.ckpt", body)
        url = hub.redirect("/downgrade/m.ckpt", plain.base_url + "/plain/m.ckpt")
        with pytest.raises(SourceRefused, match="no downgrade from https"):
            await cache_for(tmp_path, transport).fetch(parse_source(url), lenient)
        assert plain.hits["/plain/m.ckpt"] == 0
        # Plain http to plain http, where the operator allows http, is followed.
        plain.redirect("/o/r/resolve/main/m.ckpt", "/plain/m.ckpt")
        source = parse_source("hf://o/r/m.ckpt", hf_endpoint=plain.base_url)
        model = await cache_for(tmp_path, transport).fetch(source, lenient)
        assert model.path.read_bytes() == body
        assert plain.hits["/plain/m.ckpt"] == 1


def _tier(*hosts: str) -> Tier:
    return Tier("t", 10, 0, 1, 1, None, 60, ("all_models",), ("all",), model_sources=hosts)


async def test_a_pin_of_content_cached_from_another_source_is_read_from_its_own_once(
        hub: RangeServer, cdn: RangeServer, transport: Transport, tmp_path: Path,
        cdn_resolves_to: dict[str, str]) -> None:
    """Tier A fetched H from host a; tier B, which may fetch only from host b, pins H on
    b: b is read (the cache's copy vouches for nothing), and each tier sees only its own
    placed name."""
    body = file_body("one-content-two-hosts", 80_000)
    hub.serve("/a/secret.safetensors", body)
    cdn.serve("/b/mine.safetensors", body)
    cache, folder = cache_for(tmp_path / "cache", transport), tmp_path / "checkpoints"
    from_a = parse_source(hub.base_url + "/a/secret.safetensors", sha256=sha(body))
    from_b = parse_source(_on_cdn(cdn, "/b/mine.safetensors"), sha256=sha(body))
    placed_a = cache.place(await cache.fetch(
        from_a, SourcePolicy(LOOPBACK, allowed_hosts=("127.0.0.1",))), folder)
    tier_b = SourcePolicy(LOOPBACK, allowed_hosts=(CDN,))
    placed_b = cache.place(await cache.fetch(from_b, tier_b), folder)
    assert cdn.hits["/b/mine.safetensors"] == 1
    assert (await cache.fetch(from_b, tier_b)).path.read_bytes() == body
    assert (cdn.hits["/b/mine.safetensors"], hub.hits["/a/secret.safetensors"]) == (1, 1)

    files = []
    for name in (placed_a, placed_b):
        found = cache.placed(folder / name)
        assert found is not None
        sources = tuple(FileSource(o.display, o.host, o.key) for o in found[1])
        files.append(FleetModelFile("w1", None, False, ModelFile(
            "checkpoints", name, len(body), 1.0, found[0], None, sources)))
    listed = fleet_models(files)
    assert [m.file.filename for m in visible_models(listed, host_check(_tier(CDN)))] == [
        placed_b]
    assert [m.file.filename for m in visible_models(
        listed, host_check(_tier("127.0.0.1")))] == [placed_a]
