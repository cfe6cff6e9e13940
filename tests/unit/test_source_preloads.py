"""A worker's preloads by source, over a real model cache whose file is already there, read
from that very source before (such a source is never downloaded again, so nothing connects
anywhere): the
file is placed and handed back as a preload of the placed name, pinned while the preload
lasts and released when it ends; a refused one holds nothing and is tried again later."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from comfy_serverless.model_sources import parse_source
from comfy_serverless.store.models import ModelPreload
from comfy_serverless.worker.source_preloads import SourcePreloads
from tests.helpers import wait_for
from tests.model_files import offline_fetcher

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
    link = tmp_path / "checkpoints" / f"{SHA[:12]}-tiny.safetensors"
    assert link.read_bytes() == CONTENT
    pin = fetcher.cache.layout.root / "pins" / SHA
    assert _pinned(pin)
    assert (await sources.ready([wanted]))[1] is False  # placed before: nothing new

    assert await sources.ready([]) == ([], False)  # expired: the pin is released
    assert not _pinned(pin)


async def test_a_refused_source_preload_holds_nothing_and_is_tried_again_later(
        tmp_path: Path) -> None:
    fetcher = offline_fetcher(tmp_path)
    (fetcher.cache.layout.root / "sha256" / SHA).write_bytes(CONTENT)
    now = [0.0]
    sources = SourcePreloads(fetcher, retry_seconds=30, clock=lambda: now[0])
    refused = _preload("pre_2", ("models.example.com",))
    assert await sources.ready([refused]) == ([], False)

    async def failed() -> bool:
        await sources.ready([refused])
        fetch = sources._fetches["pre_2"]
        return fetch.failed_at is not None

    await wait_for(failed, timeout=10, what="the refusal noticed")
    first = sources._fetches["pre_2"].task
    assert not _pinned(fetcher.cache.layout.root / "pins" / SHA)
    assert not (tmp_path / "checkpoints").exists()
    await sources.ready([refused])
    assert sources._fetches["pre_2"].task is first  # not yet
    now[0] = 31.0
    await sources.ready([refused])
    assert sources._fetches["pre_2"].task is not first  # tried again
    await sources.close()
