"""A model download killed with its service resumes after a restart, on a real ComfyUI on
the CPU: the service process (API and embedded worker) is killed with SIGKILL while the
loopback server holds the download open part-way, started again on the same data folder
and model cache, the execution's lease is rescued, and the next attempt asks for the rest
of the file with `Range` instead of fetching it again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import LocalService
from tests.helpers import submit, wait_for, wait_until_finished
from tests.model_files import model_source_service_env, sha_of_file
from tests.range_server import range_server
from tests.tls_server import LocalCertificates
from workloads.workflows import TINY_CHECKPOINT, tiny_sd15

pytestmark = pytest.mark.comfyui

STALL_AT = 64 << 20  # the first answer sends this much of the checkpoint, then holds
PATH = "/ckpt/killed.safetensors"


def _service_env(models: Path, data_dir: Path, certificates: LocalCertificates
                 ) -> dict[str, str]:
    """Leases short enough that a killed service's job is rescued within seconds."""
    return {**model_source_service_env(models, data_dir / "tiers.json",
                                       certificates.ca_bundle, {"enterprise": ["127.0.0.1"]}),
            "COMFY_SERVERLESS_LEASE_SECONDS": "3", "COMFY_SERVERLESS_RESCUE_INTERVAL": "1"}


@asynccontextmanager
async def _api(service: LocalService, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def _partial_size(models: Path) -> int:
    partials = list((models / ".cs-cache" / "partial").glob("*.part"))
    return partials[0].stat().st_size if partials else 0


async def test_a_download_killed_with_its_service_resumes_after_a_restart(
        engine_layout: EngineLayout, test_certificates: LocalCertificates,
        tmp_path: Path) -> None:
    models, data_dir = tmp_path / "models", tmp_path / "service"
    env = _service_env(models, data_dir, test_certificates)
    checkpoint = engine_layout.models_dir / "checkpoints" / TINY_CHECKPOINT
    size, sha256 = checkpoint.stat().st_size, sha_of_file(checkpoint)
    with range_server(test_certificates) as server:
        url = server.serve(PATH, checkpoint, stall_after=STALL_AT)
        workflow = tiny_sd15(1, steps=1)
        workflow["4"]["inputs"]["ckpt_name"] = url
        first = LocalService.launch(data_dir, engine_layout.root, extra_env=env)
        try:
            first.wait_ready(240)
            key = first.new_unthrottled_key()
            async with _api(first, key) as api:
                execution_id = await submit(api, workflow,
                                            model_sources={url: {"sha256": sha256}},
                                            execution_config={"retry_attempts": 1})

                async def stalled() -> bool:
                    return _partial_size(models) >= STALL_AT - (1 << 20)

                await wait_for(stalled, timeout=240, interval=0.2, what="the stalled download")
        finally:
            first.process.kill()  # our own child, by its handle; then its ComfyUI, by pid
            first.process.wait()
            first.stop()
        kept = _partial_size(models)
        with LocalService.start(data_dir, engine_layout.root, extra_env=env) as second:
            async with _api(second, key) as api:
                done = await wait_until_finished(api, execution_id, timeout=300)
        # Read before the server stops: stopping releases the stalled first answer.
        ranges, sent = list(server.ranges), server.sent[PATH]
    assert done["status"] == "completed", done.get("error")
    assert ranges == [None, f"bytes={kept}-"]
    assert sent == STALL_AT + size - kept
    assert sent < 2 * size
    placed = models / "checkpoints" / f"{sha256[:12]}-killed.safetensors"
    assert placed.resolve().stat().st_size == size
