"""Model sources without a network: parsing, the tier policy, and the refusals that must
come before any connection."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import os
from pathlib import Path
from typing import NoReturn

import pytest

from comfy_serverless.model_sources import (
    CacheFull,
    HashNotAllowed,
    HostCredential,
    MalformedSource,
    ModelCache,
    Secret,
    SourcePolicy,
    SourceRefused,
    Transport,
    check_source,
    https_body,
    hub_credential,
    is_model_source,
    parse_source,
)
from comfy_serverless.model_sources.layout import CacheLayout
from comfy_serverless.model_sources.locks import exclusive, try_exclusive
from comfy_serverless.model_sources.partial import PartialFile
from comfy_serverless.webhooks.ssrf import WebhookPolicy
from tests.helpers import wait_for

DIGEST = hashlib.sha256(b"model").hexdigest()


def test_an_https_source_keeps_its_pin_and_basename() -> None:
    source = parse_source(f"https://example.com/models/sd%2015.safetensors#sha256={DIGEST}")
    assert (source.kind, source.sha256, source.host) == ("https", DIGEST, "example.com")
    assert source.basename == "sd_15.safetensors"
    assert source.identity == "https://example.com/models/sd%2015.safetensors"


def test_a_query_string_stays_out_of_the_display_form() -> None:
    source = parse_source("https://cdn.example.com/m.ckpt?X-Amz-Signature=abc")
    assert source.display == "https://cdn.example.com/m.ckpt"
    assert source.url == "https://cdn.example.com/m.ckpt?X-Amz-Signature=abc"


def test_an_hf_source_resolves_to_the_endpoint() -> None:
    source = parse_source("hf://owner/repo/unet/model.safetensors@v1.0",
                          hf_endpoint="https://hub.example/")
    assert source.url == "https://hub.example/owner/repo/resolve/v1.0/unet/model.safetensors"
    assert (source.kind, source.basename) == ("hf", "model.safetensors")
    assert parse_source("hf://o/r/f.bin").url == "https://huggingface.co/o/r/resolve/main/f.bin"


def test_an_s3_source_names_a_bucket_and_a_key() -> None:
    source = parse_source("s3://models-bucket/loras/style.safetensors", sha256=DIGEST.upper())
    assert (source.bucket, source.key, source.sha256) == (
        "models-bucket", "loras/style.safetensors", DIGEST)
    assert source.host == "s3://models-bucket"


@pytest.mark.parametrize(("value", "reason"), [
    ("ftp://example.com/m.ckpt", "starts with"),
    ("https://example.com/m.ckpt#md5=abc", "only fragment"),
    ("https://example.com/m.ckpt#sha256=1234", "64 hexadecimal"),
    ("https://user:hunter2@example.com/m.ckpt", "user info"),
    ("https://exa mple.com/m.ckpt", "spaces"),
    ("https://example.com/", "file name"),
    ("https://a..b/m.ckpt", "malformed"),
    ("s3://AB/key", "bucket"),
    ("s3://bucket", "object key"),
    ("hf://owner/repo", "hf://<owner>"),
    ("hf://owner/repo/../etc/passwd", "'..'"),
    ("hf://owner/repo/f.bin@bad/rev", "revision"),
])
def test_a_malformed_source_says_why(value: str, reason: str) -> None:
    with pytest.raises(MalformedSource, match=reason) as caught:
        parse_source(value)
    assert "hunter2" not in str(caught.value)


def test_a_fragment_and_a_given_hash_must_agree() -> None:
    with pytest.raises(MalformedSource, match="disagree"):
        parse_source(f"https://example.com/m.ckpt#sha256={DIGEST}", sha256="0" * 64)


def test_only_source_schemes_are_sources() -> None:
    assert is_model_source("hf://o/r/f")
    assert is_model_source("s3://b/k")
    assert not is_model_source("sd15.safetensors")
    assert not is_model_source(7)


def test_the_default_policy_allows_no_host() -> None:
    with pytest.raises(SourceRefused, match="allowlist"):
        SourcePolicy().check_host(parse_source("https://huggingface.co/o/r/resolve/main/f"))


def test_host_globs_match_hosts_and_buckets() -> None:
    policy = SourcePolicy(allowed_hosts=("*.example.com", "s3://models-*"))
    policy.check_host(parse_source("https://cdn.Example.com/m.ckpt"))
    policy.check_host(parse_source("s3://models-eu/m.ckpt"))
    for refused in ("https://example.com/m.ckpt", "s3://other/m.ckpt"):
        with pytest.raises(SourceRefused):
            policy.check_host(parse_source(refused))


def test_required_hashes_refuse_an_unlisted_hash() -> None:
    policy = SourcePolicy(required_hashes=frozenset({DIGEST}))
    policy.check_hash(DIGEST)
    with pytest.raises(HashNotAllowed, match="require_model_hashes"):
        policy.check_hash("0" * 64)
    SourcePolicy().check_hash("0" * 64)  # off by default: nothing raised


def test_a_secret_never_shows_its_value() -> None:
    token = Secret("hf_topsecret")
    credential = hub_credential("https://hub.example", token)
    policy = SourcePolicy(credentials=(credential,))
    for shown in (repr(token), str(token), repr(credential), repr(policy), f"{policy}"):
        assert "topsecret" not in shown
    assert policy.headers_for("hub.example") == {"Authorization": "Bearer hf_topsecret"}
    assert policy.headers_for("other.example") == {}


def test_credentials_go_only_to_their_host() -> None:
    policy = SourcePolicy(credentials=(
        HostCredential("*.models.example", Secret("a")),
        HostCredential("*", Secret("b"), header="X-Other")))
    assert policy.headers_for("eu.models.example") == {"Authorization": "a", "X-Other": "b"}
    assert policy.headers_for("evil.example") == {"X-Other": "b"}


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/m.ckpt",  # cloud metadata, link-local
    "https://10.0.0.7/m.ckpt",
    "https://[::ffff:127.0.0.1]/m.ckpt",
    "https://0x7f000001/m.ckpt",
])
@pytest.mark.usefixtures("no_connections")
async def test_an_internal_address_is_refused_by_the_check(url: str) -> None:
    policy = SourcePolicy(allowed_hosts=("*",))
    with pytest.raises(SourceRefused, match="internal address"):
        await check_source(parse_source(url), policy)


@pytest.mark.usefixtures("no_connections")
async def test_an_unsafe_host_is_refused_before_any_connection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connection(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(https_body, "pinned_download", no_connection)
    cache = ModelCache(tmp_path, max_bytes=1 << 20, transport=Transport())
    policy = SourcePolicy(WebhookPolicy(), allowed_hosts=("*",))
    with pytest.raises(SourceRefused, match="internal address"):
        await cache.fetch(parse_source("https://169.254.169.254/m.ckpt"), policy)
    assert list((tmp_path / "partial").iterdir()) == []


async def test_an_unlisted_pinned_hash_is_refused_before_any_connection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connection(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(https_body, "pinned_download", no_connection)
    cache = ModelCache(tmp_path, max_bytes=1 << 20, transport=Transport())
    policy = SourcePolicy(allowed_hosts=("*",), required_hashes=frozenset({"1" * 64}))
    with pytest.raises(HashNotAllowed):
        await cache.fetch(parse_source(f"https://example.com/m.ckpt#sha256={DIGEST}"), policy)


def test_a_resumed_partial_file_rebuilds_its_hash_from_disk(tmp_path: Path) -> None:
    first = PartialFile(tmp_path / "model.part")
    assert first.resume() == 0
    first.append(b"mod")
    first.close()
    again = PartialFile(tmp_path / "model.part")
    assert again.resume() == 3
    again.append(b"el")
    again.finish()
    assert again.hexdigest() == DIGEST
    assert (tmp_path / "model.part").read_bytes() == b"model"


def test_a_restarted_partial_file_forgets_its_bytes(tmp_path: Path) -> None:
    partial = PartialFile(tmp_path / "model.part")
    partial.resume()
    partial.append(b"stale")
    partial.restart()
    partial.append(b"model")
    partial.finish()
    assert (partial.size, partial.hexdigest()) == (5, DIGEST)


async def test_a_pinned_file_is_never_evicted_even_by_another_holder(tmp_path: Path) -> None:
    layout = CacheLayout(tmp_path)
    for name, size in (("a" * 64, 60), ("b" * 64, 30)):
        layout.blob(name).write_bytes(b"x" * size)
    os.utime(layout.blob("a" * 64), (1, 1))  # the oldest
    descriptor = layout.pin("a" * 64)  # a lock on its own file: as another process holds it
    try:
        with pytest.raises(CacheFull):
            await layout.make_room(50, max_bytes=100)
        assert layout.blob("a" * 64).exists()
        assert not layout.blob("b" * 64).exists()  # evicted trying to make room
    finally:
        os.close(descriptor)
    await layout.make_room(50, max_bytes=100)
    assert not layout.blob("a" * 64).exists()


async def test_partial_downloads_count_and_unheld_ones_and_locks_are_swept(
        tmp_path: Path) -> None:
    layout = CacheLayout(tmp_path)
    stale, busy = tmp_path / "partial" / "stale.part", tmp_path / "partial" / "busy.part"
    stale.write_bytes(b"s" * 40)
    stale.with_suffix(".tag").write_text('"v1"')
    busy.write_bytes(b"b" * 40)
    layout.blob("a" * 64).write_bytes(b"a" * 30)
    for lock in ("stale", "finished"):
        (tmp_path / "locks" / f"{lock}.lock").touch()
    for age, path in enumerate((stale, busy, layout.blob("a" * 64)), start=1):
        os.utime(path, (age, age))
    async with exclusive(tmp_path / "locks" / "busy.lock"):  # a download in progress
        with pytest.raises(CacheFull):  # 40 + 40 + 30 used; the busy 40 + 70 > 100
            await layout.make_room(70, max_bytes=100)
        assert busy.exists()
        assert not stale.exists()
        assert not stale.with_suffix(".tag").exists()
        assert not layout.blob("a" * 64).exists()
        assert sorted(path.name for path in (tmp_path / "locks").iterdir()) == [
            "busy.lock", "evict.lock"]
        await layout.make_room(60, max_bytes=100, own=busy)  # its own partial file
    await layout.make_room(70, max_bytes=100)
    assert not busy.exists()


async def test_a_lock_file_swept_while_waited_for_is_never_held_twice(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "source.lock"
    held, release = asyncio.Event(), asyncio.Event()

    async def download() -> None:
        async with exclusive(path):
            held.set()
            await release.wait()

    async with exclusive(path):
        waiting = asyncio.create_task(download())
        await wait_for(lambda: _opened_here(path), timeout=5, interval=0.01,
                       what="the waiter to open the lock file")
        path.unlink()  # a sweep removes the file while this holder has it
    await asyncio.wait_for(held.wait(), 5)
    with try_exclusive(path) as free:  # the file now at `path` is the waiter's
        assert free is False
    release.set()
    await waiting


def test_the_package_imports_only_leaves_and_the_outbound_policy() -> None:
    """model_sources must stay usable by the worker and the API alike: it may import the
    URL reader, the SSRF policy and outbound requests, the S3 settings, the loader-input
    vocabulary (which validation shares) and the error root, never api/, executions/,
    worker/ or the store."""
    allowed = ("comfy_serverless.model_sources", "comfy_serverless.outbound_urls",
               "comfy_serverless.loader_inputs",
               "comfy_serverless.webhooks.ssrf",
               "comfy_serverless.webhooks.outbound", "comfy_serverless.storage.s3",
               "comfy_serverless.errors")
    package = Path(https_body.__file__).parent
    imported = {node.module for path in package.glob("*.py")
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and node.module
                and node.module.startswith("comfy_serverless")}
    assert imported, "the walk found the package's imports"
    assert {module for module in imported if not module.startswith(allowed)} == set()


async def _opened_here(path: Path) -> bool:
    """Whether this process holds `path` open more than once (the holder, and a waiter)."""
    opened = 0
    for descriptor in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            opened += os.readlink(descriptor) == str(path)
    return opened >= 2
