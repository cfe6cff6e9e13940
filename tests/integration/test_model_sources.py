"""Model sources fetched into the cache from loopback servers only: an https server with
the session's test CA and `Range` support (also standing in for the Hugging Face endpoint),
and moto for s3."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
from pathlib import Path

import pytest

from comfy_serverless.model_sources import (
    CacheFull,
    DownloadFailed,
    HashMismatch,
    HashNotAllowed,
    HostCredential,
    ModelCache,
    ModelUnavailable,
    Progress,
    Secret,
    SourcePolicy,
    SourceRefused,
    Transport,
    hub_credential,
    parse_source,
)
from comfy_serverless.outbound_urls import parse_url
from comfy_serverless.testing_s3 import S3Server
from comfy_serverless.webhooks.outbound import pinned_download
from comfy_serverless.webhooks.ssrf import CheckedUrl, WebhookPolicy
from tests.model_files import POLICY, cache_for, file_body, leftovers, sha
from tests.range_server import RangeServer, range_server


async def test_a_source_is_downloaded_once_and_placed_for_a_loader(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("ckpt", 300_000)
    url = models.serve("/once/tiny.safetensors", body) + f"#sha256={sha(body)}"
    cache = cache_for(tmp_path / "cache", transport)
    seen: list[tuple[int, int | None]] = []
    first = await cache.fetch(parse_source(url), POLICY, lambda *done: seen.append(done))
    again = await cache.fetch(parse_source(url), POLICY)
    assert models.hits["/once/tiny.safetensors"] == 1
    assert first == again
    assert first.path.read_bytes() == body
    assert seen[-1] == (len(body), len(body))
    assert len(seen) > 1
    name = cache.place(first, tmp_path / "checkpoints")
    assert name == f"{sha(body)[:12]}-tiny.safetensors"
    assert (tmp_path / "checkpoints" / name).read_bytes() == body
    assert not os.path.isabs(os.readlink(tmp_path / "checkpoints" / name))


async def test_an_unpinned_source_is_remembered_by_its_hash(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    url = models.serve("/unpinned/lora.safetensors", file_body("lora", 5000))
    cache = cache_for(tmp_path, transport)
    first = await cache.fetch(parse_source(url), POLICY)
    second = await cache_for(tmp_path, transport).fetch(parse_source(url), POLICY)
    assert first.sha256 == second.sha256 == sha(file_body("lora", 5000))
    assert models.hits["/unpinned/lora.safetensors"] == 1


async def test_eight_concurrent_fetches_cause_one_download(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("eight", 2_000_000)
    url = models.serve("/eight/model.ckpt", body) + f"#sha256={sha(body)}"
    # Two caches on one folder stand for two worker processes on one machine.
    caches = [cache_for(tmp_path, transport), cache_for(tmp_path, transport)]
    progress: list[list[int]] = [[] for _ in range(8)]
    fetched = await asyncio.gather(*(
        caches[index % 2].fetch(parse_source(url), POLICY, _recorder(progress[index]))
        for index in range(8)))
    assert models.hits["/eight/model.ckpt"] == 1
    assert {model.sha256 for model in fetched} == {sha(body)}
    assert any(seen and seen[-1] == len(body) for seen in progress)


async def test_a_wrong_sha256_fails_for_good_and_leaves_no_file(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    url = models.serve("/wrong/model.ckpt", file_body("wrong", 70_000))
    cache = cache_for(tmp_path, transport)
    with pytest.raises(HashMismatch, match="not the pinned") as caught:
        await cache.fetch(parse_source(url, sha256="ab" * 32), POLICY)
    assert caught.value.retryable is False
    assert leftovers(tmp_path) == []


async def test_a_killed_download_resumes_with_range(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("resume", 400_000)
    url = models.serve("/killed/model.ckpt", body, drop_after=150_000)
    source = parse_source(url, sha256=sha(body))
    cache = cache_for(tmp_path, transport)
    with pytest.raises(DownloadFailed) as caught:
        await cache.fetch(source, POLICY)
    assert caught.value.retryable is True
    partial = next((tmp_path / "partial").iterdir())
    kept = partial.stat().st_size
    assert 0 < kept < len(body)
    model = await cache.fetch(source, POLICY)
    assert model.path.read_bytes() == body
    assert models.hits["/killed/model.ckpt"] == 2
    assert models.ranges[-1] == f"bytes={kept}-"
    assert leftovers(tmp_path) == [sha(body)]


async def test_a_hash_outside_the_operator_allowlist_is_refused_and_removed(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    allowed = file_body("allowed", 1000)
    strict = SourcePolicy(POLICY.destinations, allowed_hosts=("127.0.0.1",),
                          required_hashes=frozenset({sha(allowed)}))
    cache = cache_for(tmp_path, transport)
    with pytest.raises(HashNotAllowed):
        await cache.fetch(parse_source(models.serve("/strict/other.ckpt", b"other")), strict)
    assert leftovers(tmp_path) == []
    url = models.serve("/strict/allowed.ckpt", allowed)
    assert (await cache.fetch(parse_source(url), strict)).sha256 == sha(allowed)
    # Also for a file already on disk: a stricter allowlist refuses it without a download.
    with pytest.raises(HashNotAllowed):
        await cache.fetch(parse_source(url), SourcePolicy(
            POLICY.destinations, allowed_hosts=("127.0.0.1",), required_hashes=frozenset()))
    assert models.hits["/strict/allowed.ckpt"] == 1


async def test_the_budget_evicts_the_oldest_unpinned_file_and_never_a_pinned_one(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    bodies = {name: file_body(name, size) for name, size in
              (("a", 40_000), ("b", 40_000), ("c", 50_000), ("d", 70_000))}
    urls = {name: models.serve(f"/lru/{name}.ckpt", body) for name, body in bodies.items()}
    cache = cache_for(tmp_path, transport, max_bytes=100_000)
    async with cache.use(parse_source(urls["a"]), POLICY) as pinned:
        await cache.fetch(parse_source(urls["b"]), POLICY)
        os.utime(pinned.path, (1, 1))  # the pinned file is the least recently used
        await cache.fetch(parse_source(urls["c"]), POLICY)  # 40+40+50 > 100: b goes
        assert set(leftovers(tmp_path)) == {sha(bodies["a"]), sha(bodies["c"])}
        with pytest.raises(CacheFull) as caught:  # 40 pinned + 70 > 100, whatever goes
            await cache.fetch(parse_source(urls["d"]), POLICY)
        assert caught.value.retryable is True
        assert pinned.path.exists()
    assert (await cache.fetch(parse_source(urls["d"]), POLICY)).size == 70_000
    assert not pinned.path.exists()


async def test_a_file_larger_than_the_whole_budget_is_not_retryable(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    url = models.serve("/huge/model.ckpt", file_body("huge", 2000))
    with pytest.raises(ModelUnavailable, match="whole cache budget") as caught:
        await cache_for(tmp_path, transport, max_bytes=1000).fetch(parse_source(url), POLICY)
    assert caught.value.retryable is False


async def test_credentials_reach_their_host_and_no_error_or_log(
        models: RangeServer, transport: Transport, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-model-token-7731"
    policy = SourcePolicy(POLICY.destinations, allowed_hosts=("127.0.0.1",),
                          credentials=(HostCredential("127.0.0.1", Secret(secret)),))
    cache = cache_for(tmp_path, transport)
    caplog.set_level(logging.DEBUG)
    await cache.fetch(parse_source(models.serve("/secret/ok.ckpt", b"ok")), policy)
    assert models.headers[-1]["Authorization"] == secret
    failures = []
    for path in ("/secret/missing.ckpt", "/secret/dropped.ckpt"):
        if path.endswith("dropped.ckpt"):
            models.serve(path, file_body("x", 50_000), drop_after=10)
        with pytest.raises(ModelUnavailable) as caught:
            await cache.fetch(parse_source(models.base_url + path), policy)
        failures.append(caught.value)
    shown = [str(error) for error in failures] + [repr(error) for error in failures]
    shown += [repr(policy), caplog.text]
    assert all(secret not in text for text in shown)
    assert "model download of" in caplog.text


async def test_a_hugging_face_path_is_fetched_from_the_endpoint_with_its_token(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("hf", 3000)
    models.serve("/owner/repo/resolve/v2/unet/model.safetensors", body)
    source = parse_source("hf://owner/repo/unet/model.safetensors@v2",
                          hf_endpoint=models.base_url, sha256=sha(body))
    policy = SourcePolicy(POLICY.destinations, allowed_hosts=("127.0.0.1",),
                          credentials=(hub_credential(models.base_url, Secret("hf_abc")),))
    model = await cache_for(tmp_path, transport).fetch(source, policy)
    assert model.path.read_bytes() == body
    assert model.basename == "model.safetensors"
    assert models.headers[-1]["Authorization"] == "Bearer hf_abc"


async def test_an_s3_source_is_read_with_the_configured_credentials_and_resumes(
        s3_server: S3Server, tmp_path: Path) -> None:
    s3_server.create_bucket("models-store")
    body = file_body("s3", 600_000)
    s3_server.client().put_object(Bucket="models-store", Key="loras/s.safetensors", Body=body)
    source = parse_source("s3://models-store/loras/s.safetensors", sha256=sha(body))
    policy = SourcePolicy(allowed_hosts=("s3://models-*",))
    cache = ModelCache(tmp_path, max_bytes=1 << 30,
                       transport=Transport(s3=s3_server.s3_config(), chunk_bytes=1 << 16))
    cache.layout.partial(source).write_bytes(body[:250_000])  # a download killed earlier
    model = await cache.fetch(source, policy)
    assert model.path.read_bytes() == body
    # A partial file as long as the object is complete: nothing more is read. (Its bytes
    # differ from the object's here, so a second read would have failed the pin.)
    kept = file_body("kept", len(body))
    whole = parse_source("s3://models-store/loras/s.safetensors", sha256=sha(kept))
    cache.layout.partial(whole).write_bytes(kept)
    assert (await cache.fetch(whole, policy)).path.read_bytes() == kept
    with pytest.raises(ModelUnavailable, match="NoSuchKey") as caught:
        await cache.fetch(parse_source("s3://models-store/missing.ckpt"), policy)
    assert caught.value.retryable is False


async def test_a_server_that_ignores_range_restarts_the_partial_file(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("norange", 80_000)
    url = models.serve("/norange/model.ckpt", body, ranges=False)
    source = parse_source(url, sha256=sha(body))
    cache = cache_for(tmp_path, transport)
    cache.layout.partial(source).write_bytes(b"stale bytes from another attempt")
    model = await cache.fetch(source, POLICY)
    assert model.path.read_bytes() == body
    assert models.ranges[-1] == "bytes=32-"


@pytest.mark.parametrize(("status", "retryable", "reason"), [
    (503, True, "answered 503"),
    (429, True, "answered 429"),
    (404, False, "answered 404"),
    (300, False, "not a redirect this service follows"),
])
async def test_an_answer_other_than_the_body_is_typed(
        models: RangeServer, transport: Transport, tmp_path: Path,
        status: int, retryable: bool, reason: str) -> None:
    url = models.serve(f"/status/{status}.ckpt", b"", status=status)
    with pytest.raises(ModelUnavailable, match=reason) as caught:
        await cache_for(tmp_path, transport).fetch(parse_source(url), POLICY)
    assert caught.value.retryable is retryable
    assert models.hits["/elsewhere"] == 0  # a 300's Location is not followed
    assert leftovers(tmp_path) == []  # no partial file: there is nothing to resume


async def test_the_download_goes_to_the_checked_address_under_the_url_host_name(
        models: RangeServer, tmp_path: Path) -> None:
    """A name that resolves nowhere, pinned to 127.0.0.1 by the check: the request reaches
    the checked address and still names the URL's host (no second lookup)."""
    models.serve("/pinned.bin", b"pinned")
    port = models.base_url.rsplit(":", 1)[1]
    target = parse_url(f"https://models.invalid:{port}/pinned.bin")
    checked = CheckedUrl(target, (ipaddress.IPv4Address("127.0.0.1"),))
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    with pinned_download(checked, {"X-Probe": "1"}, unverified, 10) as response:
        assert response.read() == b"pinned"
    assert models.headers[-1]["Host"] == f"models.invalid:{port}"
    assert models.headers[-1]["Accept-Encoding"] == "identity"


async def test_a_cached_file_placed_in_a_model_folder_goes_with_its_eviction(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    cache = cache_for(tmp_path / "cache", transport, max_bytes=50_000)
    first = await cache.fetch(parse_source(models.serve("/evict/a.ckpt", file_body("a", 30_000))),
                              POLICY)
    link = tmp_path / "loras" / cache.place(first, tmp_path / "loras")
    assert link.is_symlink()
    await cache.fetch(parse_source(models.serve("/evict/b.ckpt", file_body("b", 30_000))), POLICY)
    assert not first.path.exists()
    assert not link.is_symlink()


async def test_a_waiter_that_leaves_does_not_stop_the_download_for_the_others(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("leave", 1_000_000)
    url = models.serve("/leave/model.ckpt", body) + f"#sha256={sha(body)}"
    cache = cache_for(tmp_path, transport)
    started = asyncio.Event()
    leaving = asyncio.create_task(
        cache.fetch(parse_source(url), POLICY, lambda _done, _total: started.set()))
    staying = asyncio.create_task(cache.fetch(parse_source(url), POLICY))
    await started.wait()
    leaving.cancel()
    assert (await staying).path.read_bytes() == body
    assert leaving.cancelled()
    assert models.hits["/leave/model.ckpt"] == 1


async def test_a_wrong_pin_fails_alone_beside_an_unpinned_fetch_of_the_same_url(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("pins", 200_000)
    url = models.serve("/pins/model.ckpt", body)
    cache = cache_for(tmp_path, transport)
    wrong, unpinned = await asyncio.gather(
        cache.fetch(parse_source(url, sha256="cd" * 32), POLICY),
        cache.fetch(parse_source(url), POLICY), return_exceptions=True)
    assert isinstance(wrong, HashMismatch)
    assert not isinstance(unpinned, BaseException)
    assert unpinned.path.read_bytes() == body
    assert leftovers(tmp_path) == [sha(body)]


async def test_a_stricter_policy_never_gets_a_file_through_a_shared_download(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    body = file_body("tiers", 200_000)
    url = models.serve("/tiers/model.ckpt", body)
    strict = SourcePolicy(POLICY.destinations, allowed_hosts=("127.0.0.1",),
                          required_hashes=frozenset())
    cache = cache_for(tmp_path, transport)
    lenient, refused = await asyncio.gather(
        cache.fetch(parse_source(url), POLICY), cache.fetch(parse_source(url), strict),
        return_exceptions=True)
    assert isinstance(refused, HashNotAllowed)
    assert not isinstance(lenient, BaseException)
    assert leftovers(tmp_path) == [sha(body)]  # the lenient tier's file stays


async def test_a_plain_http_mirror_serves_only_where_https_is_not_required(
        transport: Transport, tmp_path: Path) -> None:
    body = file_body("mirror", 5000)
    with range_server(None) as mirror:
        mirror.serve("/o/r/resolve/main/m.bin", body)
        source = parse_source("hf://o/r/m.bin", hf_endpoint=mirror.base_url)
        with pytest.raises(SourceRefused, match="https"):
            await cache_for(tmp_path, transport).fetch(source, POLICY)
        plain = SourcePolicy(WebhookPolicy(require_https=False,
                                           allowed_networks=("127.0.0.1/32",)),
                             allowed_hosts=("127.0.0.1",))
        model = await cache_for(tmp_path, transport).fetch(source, plain)
        assert model.path.read_bytes() == body
        assert mirror.hits["/o/r/resolve/main/m.bin"] == 1


def _recorder(seen: list[int]) -> Progress:
    """A progress callback that records the bytes done at each call."""
    def record(done: int, _total: int | None) -> None:
        seen.append(done)
    return record
