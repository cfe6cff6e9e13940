"""A worker's preloads by source, over a real model cache: one whose file is already there,
read from that very source before (such a source is never downloaded again) is placed and
handed back as a preload of the placed name, once, pinned while the preload lasts and
released when it ends. Failures, against a loopback https server: a permanent one (refused,
wrong hash, over the cache's budget) holds nothing and is never tried again; a retryable one
(the server failing) is tried again after a back-off that doubles, and logged once, not per
attempt."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest

from comfy_serverless.model_sources import ModelCache, SourcePolicy, Transport, parse_source
from comfy_serverless.store.models import ModelPreload
from comfy_serverless.store.store import Store
from comfy_serverless.webhooks.ssrf import WebhookPolicy
from comfy_serverless.worker.execution_context import ExecutorConfig
from comfy_serverless.worker.model_fetch import ModelFetcher
from comfy_serverless.worker.source_preloads import SourcePreloads, to_keep_warm
from tests.helpers import wait_for
from tests.model_files import offline_fetcher
from tests.range_server import RangeServer, range_server
from tests.tls_server import LocalCertificates

CONTENT = b"weights of a tiny model"
SHA = hashlib.sha256(CONTENT).hexdigest()


def _preload(preload_id: str, hosts: tuple[str, ...]) -> ModelPreload:
    return ModelPreload(preload_id, "key", f"checkpoint/{SHA[:12]}-tiny", "checkpoints",
                        f"{SHA[:12]}-tiny.safetensors", 5, None, 0.0, 1e12,
                        source="https://127.0.0.1:8443/m/tiny.safetensors?sig=x",
                        source_sha256=SHA, allowed_hosts=hosts)


def _pinned(pin: Path) -> bool:
    descriptor = os.open(pin, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


async def test_a_source_preload_is_placed_pinned_while_it_lasts_then_released(
        tmp_path: Path) -> None:
    fetcher = offline_fetcher(tmp_path)
    layout = fetcher.cache.layout
    (layout.root / "sha256" / SHA).write_bytes(CONTENT)
    wanted = _preload("pre_1", ("127.0.0.1",))
    assert wanted.source is not None
    (layout.root / "sources" / layout.key(parse_source(wanted.source))).write_text(SHA)
    sources = SourcePreloads(fetcher)

    async def placed() -> list[ModelPreload] | None:
        found, _ = await sources.ready([wanted])
        return found or None

    found = await wait_for(placed, timeout=10, what="the preload placed")
    assert [p.filename for p in found] == [f"{SHA[:12]}-tiny.safetensors"]
    assert found == [wanted]  # pinned: its placed form is the preload itself ...
    assert to_keep_warm([wanted], found) == [wanted]  # ... which is loaded once
    link = tmp_path / "checkpoints" / f"{SHA[:12]}-tiny.safetensors"
    assert link.read_bytes() == CONTENT
    pin = fetcher.cache.layout.root / "pins" / SHA
    assert _pinned(pin)
    assert (await sources.ready([wanted]))[1] is False  # placed before: nothing new

    assert await sources.ready([]) == ([], False)  # expired: the pin is released
    assert not _pinned(pin)


@pytest.fixture(scope="module")
def models(test_certificates: LocalCertificates) -> Iterator[RangeServer]:
    with range_server(test_certificates) as server:
        yield server


def _fetcher(tmp_path: Path, certificates: LocalCertificates, max_bytes: int = 1 << 20
             ) -> ModelFetcher:
    """A worker's fetcher whose cache downloads from loopback only."""
    transport = Transport(ssl.create_default_context(cafile=str(certificates.ca_bundle)),
                          timeout=10, chunk_bytes=1 << 14)
    cache = ModelCache(tmp_path / ".cs-cache", max_bytes=max_bytes, transport=transport)
    config = ExecutorConfig(worker_id="w", lease_seconds=30, heartbeat_interval=1,
                            cancel_poll_interval=1, progress_write_interval=1)
    loopback = WebhookPolicy(allowed_networks=("127.0.0.1/32",))
    return ModelFetcher(lambda: cache, tmp_path,
                        lambda hosts: SourcePolicy(loopback, allowed_hosts=tuple(hosts)),
                        "https://127.0.0.1", cast(Store, None), config)


def _from(url: str, sha256: str | None, hosts: tuple[str, ...] = ("127.0.0.1",)
          ) -> ModelPreload:
    return replace(_preload("pre_x", hosts), source=url, source_sha256=sha256)


async def _noticed(sources: SourcePreloads, preload: ModelPreload) -> None:
    """Poll until the current attempt's failure is noticed."""
    async def failed() -> bool:
        await sources.ready([preload])
        return sources._fetches[preload.id].retry_at is not None

    await wait_for(failed, timeout=10, what="the failure noticed")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name.endswith("source_preloads") and record.levelno >= logging.WARNING]


@pytest.mark.parametrize("failure", ["refused", "wrong hash", "over the budget"])
async def test_a_permanent_failure_holds_nothing_and_is_never_tried_again(
        failure: str, models: RangeServer, test_certificates: LocalCertificates,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    body = b"x" * 4096
    url = models.serve(f"/permanent/{failure.replace(' ', '-')}.safetensors", body)
    fetcher = _fetcher(tmp_path, test_certificates,
                       max_bytes=1024 if failure == "over the budget" else 1 << 20)
    preload = {"refused": _from(url, None, ("models.example.com",)),
               "wrong hash": _from(url, "0" * 64),
               "over the budget": _from(url, None)}[failure]
    now = [0.0]
    sources = SourcePreloads(fetcher, retry_seconds=30, clock=lambda: now[0])
    caplog.set_level(logging.DEBUG)
    await _noticed(sources, preload)
    first = sources._fetches[preload.id].task
    hits = models.hits[url.removeprefix(models.base_url)]
    assert hits == (0 if failure == "refused" else 1)
    for later in (31.0, 3600.0, 7 * 86400.0):  # the preload's whole life
        now[0] = later
        assert await sources.ready([preload]) == ([], False)
        assert sources._fetches[preload.id].task is first
    assert models.hits[url.removeprefix(models.base_url)] == hits
    assert not any(_pinned(pin) for pin in (fetcher.cache.layout.root / "pins").iterdir())
    assert not (tmp_path / "checkpoints").exists()
    assert len(_warnings(caplog)) == 1
    assert "not tried again" in _warnings(caplog)[0]
    await sources.close()


async def test_a_retryable_failure_backs_off_doubling_and_logs_once(
        models: RangeServer, test_certificates: LocalCertificates, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    path = "/flaky/tiny.safetensors"
    url = models.serve(path, CONTENT, status=503)
    fetcher = _fetcher(tmp_path, test_certificates)
    preload = _from(url, SHA)
    now = [0.0]
    sources = SourcePreloads(fetcher, retry_seconds=30, longest_retry_seconds=100,
                             clock=lambda: now[0])
    caplog.set_level(logging.DEBUG)
    await _noticed(sources, preload)

    def tries() -> int:
        return models.hits[path]

    # Each failure is noticed at `now`; the next try is due 30, 60, then 100 (the cap) s on.
    for due in (30.0, 90.0, 190.0, 290.0):
        before = tries()
        now[0] = due - 1
        await sources.ready([preload])
        assert tries() == before  # not yet
        now[0] = due
        await _noticed(sources, preload)
        assert tries() == before + 1
    assert len(_warnings(caplog)) == 1  # five failures of one kind: one warning
    assert "tried again in 30s" in _warnings(caplog)[0]

    models.serve(path, CONTENT)  # the server is back
    now[0] = 390.0

    async def placed() -> list[ModelPreload] | None:
        found, _ = await sources.ready([preload])
        return found or None

    found = await wait_for(placed, timeout=10, what="the preload placed after the back-off")
    assert (tmp_path / "checkpoints" / found[0].filename).read_bytes() == CONTENT
    await sources.close()


async def test_a_refused_source_preload_holds_nothing_and_is_not_tried_again(
        tmp_path: Path) -> None:
    fetcher = offline_fetcher(tmp_path)
    (fetcher.cache.layout.root / "sha256" / SHA).write_bytes(CONTENT)
    now = [0.0]
    sources = SourcePreloads(fetcher, retry_seconds=30, clock=lambda: now[0])
    refused = _preload("pre_2", ("models.example.com",))
    assert await sources.ready([refused]) == ([], False)

    await _noticed(sources, refused)
    first = sources._fetches["pre_2"].task
    assert not _pinned(fetcher.cache.layout.root / "pins" / SHA)
    assert not (tmp_path / "checkpoints").exists()
    await sources.ready([refused])
    assert sources._fetches["pre_2"].task is first  # not yet
    now[0] = 31.0
    await sources.ready([refused])
    assert sources._fetches["pre_2"].task is first  # refused by policy: never again
    await sources.close()
