"""Jobs whose `ckpt_name` is an https URL, end to end on a real ComfyUI on the CPU.

A loopback https server (the session's test CA) serves a copy of the tiny checkpoint and
counts its requests. The service's tier allows the host 127.0.0.1, its ComfyUI reads an
extra models folder made here, and the model cache lives in that folder's `.cs-cache`, so
nothing is written to the engine's own models folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import LocalService
from tests.helpers import assert_error, status_of, submit, wait_for, wait_until_finished
from tests.model_files import model_source_service_env, relabelled_safetensors, sha_of_file
from tests.range_server import RangeServer, range_server
from tests.tls_server import LocalCertificates
from workloads.workflows import TINY_CHECKPOINT, tiny_sd15

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def model_server(test_certificates: LocalCertificates) -> Iterator[RangeServer]:
    with range_server(test_certificates) as server:
        yield server


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fetched-models")


@pytest.fixture(scope="module")
def sources_service(engine_layout: EngineLayout, models_folder: Path,
                    test_certificates: LocalCertificates,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    data_dir = tmp_path_factory.mktemp("sources-service")
    env = model_source_service_env(models_folder, data_dir / "tiers.json",
                                   test_certificates.ca_bundle, {"enterprise": ["127.0.0.1"]})
    with LocalService.start(data_dir, engine_layout.root, extra_env=env) as running:
        yield running


@pytest.fixture
def second_worker(sources_service: LocalService) -> Iterator[str]:
    """A standalone worker process beside the service's embedded one: the same data folder
    (SQLite), the same ComfyUI (attached), the same models folder and model cache."""
    worker_id = "second-worker"
    env = {**sources_service.env, "COMFYUI_URL": sources_service.comfyui_url,
           "COMFY_SERVERLESS_WORKER_ID": worker_id}
    log_path = sources_service.data_dir / "second-worker.log"
    with log_path.open("ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "comfy_serverless.cli", "worker"],
                                  env=env, stdout=log, stderr=log)
    try:
        yield worker_id
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        assert worker.returncode == 0, log_path.read_text()[-2000:]


@pytest.fixture
async def sources_api(sources_service: LocalService) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {sources_service.new_unthrottled_key()}"}
    async with httpx.AsyncClient(base_url=sources_service.base_url, headers=headers,
                                 timeout=60) as client:
        yield client


def _from_source(seed: int, url: str) -> dict[str, Any]:
    workflow = tiny_sd15(seed, steps=1)
    workflow["4"]["inputs"]["ckpt_name"] = url
    return workflow


def _log_events(status: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [entry for entry in status["execution_log"] if entry["event"] == event]


async def test_a_checkpoint_by_url_downloads_once_reports_its_bytes_and_runs(
        sources_api: httpx.AsyncClient, model_server: RangeServer,
        engine_layout: EngineLayout, models_folder: Path) -> None:
    checkpoint = engine_layout.models_dir / "checkpoints" / TINY_CHECKPOINT
    size, sha256 = checkpoint.stat().st_size, sha_of_file(checkpoint)
    url = model_server.serve("/ckpt/tiny-sd15.safetensors", checkpoint)
    pins = {"model_sources": {url: {"sha256": sha256}}}

    first = await wait_until_finished(
        sources_api, await submit(sources_api, _from_source(1, url), **pins), timeout=300)
    assert first["status"] == "completed", first.get("error")
    downloading = _log_events(first, "model_downloading")
    assert downloading, first["execution_log"]
    assert downloading[-1]["details"] == {"source": url, "bytes_done": size,
                                          "bytes_total": size}
    assert _log_events(first, "model_downloaded")[0]["details"]["sha256"] == sha256
    assert model_server.hits["/ckpt/tiny-sd15.safetensors"] == 1

    second = await wait_until_finished(
        sources_api, await submit(sources_api, _from_source(2, url), **pins), timeout=300)
    assert second["status"] == "completed", second.get("error")
    assert _log_events(second, "model_downloading") == []
    assert model_server.hits["/ckpt/tiny-sd15.safetensors"] == 1  # served from the cache
    assert [path.name for path in (models_folder / "checkpoints").iterdir()] == [
        f"{sha256[:12]}-tiny-sd15.safetensors"]


async def test_eight_jobs_that_need_one_new_file_cause_exactly_one_download(
        sources_api: httpx.AsyncClient, model_server: RangeServer,
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    """Submitted at once: whichever attempts the worker has begun meanwhile wait on the one
    download, and later ones find the file in the cache."""
    checkpoint = relabelled_safetensors(engine_layout.models_dir / "checkpoints" /
                                        TINY_CHECKPOINT, tmp_path / "eight.safetensors", "8")
    size, sha256 = checkpoint.stat().st_size, sha_of_file(checkpoint)
    url = model_server.serve("/ckpt/eight.safetensors", checkpoint)
    pins = {"model_sources": {url: {"sha256": sha256}}}
    ids = await asyncio.gather(*(submit(sources_api, _from_source(10 + n, url), **pins)
                                 for n in range(8)))
    finished = [await wait_until_finished(sources_api, execution_id, timeout=600)
                for execution_id in ids]
    assert [body["status"] for body in finished] == ["completed"] * 8, [
        body.get("error") for body in finished]
    assert model_server.hits["/ckpt/eight.safetensors"] == 1
    assert model_server.sent["/ckpt/eight.safetensors"] == size
    # A job whose attempt began while the download ran waited on that one download (and
    # reports it); one that began after found the file and reports none.
    reported = [entry["details"]["sha256"] for body in finished
                for entry in _log_events(body, "model_downloaded")]
    assert set(reported) == {sha256}


async def test_two_worker_processes_on_one_cache_download_a_new_file_once(
        sources_api: httpx.AsyncClient, model_server: RangeServer, second_worker: str,
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    """The download is held open until each worker has claimed a job that needs the file:
    one process downloads, the other waits on the source's lock, then finds the file."""
    checkpoint = relabelled_safetensors(engine_layout.models_dir / "checkpoints" /
                                        TINY_CHECKPOINT, tmp_path / "two.safetensors", "2")
    sha256 = sha_of_file(checkpoint)
    url = model_server.serve("/ckpt/two.safetensors", checkpoint, stall_after=1 << 20)
    pins = {"model_sources": {url: {"sha256": sha256}}}
    ids = [await submit(sources_api, _from_source(30 + n, url), **pins) for n in range(4)]

    async def claimed_by_two_workers() -> set[str] | None:
        workers: set[str] = set()
        for execution_id in ids:
            body = await status_of(sources_api, execution_id)
            if body["status"] == "processing":
                workers.add(str((body.get("resource_allocation") or {}).get("gpu_id")))
        return workers if len(workers) == 2 else None

    workers = await wait_for(claimed_by_two_workers, timeout=120, interval=0.2,
                             what="a job on each worker")
    assert second_worker in workers
    model_server.released.set()  # the download goes on
    finished = [await wait_until_finished(sources_api, execution_id, timeout=600)
                for execution_id in ids]
    assert [body["status"] for body in finished] == ["completed"] * 4, [
        body.get("error") for body in finished]
    assert model_server.hits["/ckpt/two.safetensors"] == 1


async def test_a_wrong_sha256_fails_with_model_unavailable_and_leaves_no_file(
        sources_api: httpx.AsyncClient, model_server: RangeServer,
        models_folder: Path) -> None:
    impostor = b"not the checkpoint you pinned " * 4096
    url = model_server.serve("/ckpt/impostor.safetensors", impostor)
    pinned = "0" * 64
    execution_id = await submit(sources_api, _from_source(3, url),
                                model_sources={url: {"sha256": pinned}})
    failed = await wait_until_finished(sources_api, execution_id, timeout=120)
    assert failed["status"] == "failed"
    details = failed["error"]["details"]
    assert (details["error_type"], details["failed_node"], details["input"]) == (
        "MODEL_UNAVAILABLE", "4", "ckpt_name")
    assert details["model_source"] == url
    assert failed["error"]["retry_info"]["retryable"] is False
    assert "sha256" in failed["error"]["message"]
    cache = models_folder / ".cs-cache"
    assert not (cache / "sha256" / hashlib.sha256(impostor).hexdigest()).exists()
    assert list((cache / "partial").iterdir()) == []
    assert not any("impostor" in path.name for path in (models_folder / "checkpoints").iterdir())


async def test_a_source_the_tier_does_not_allow_is_refused_at_submit_in_the_error_shape(
        sources_api: httpx.AsyncClient, model_server: RangeServer) -> None:
    elsewhere = "https://models.example.com/tiny.safetensors"  # refused before any lookup
    response = await sources_api.post("/v1/workflows/execute",
                                      json={"workflow": _from_source(4, elsewhere)})
    body = assert_error(response, 403, "MODEL_NOT_ALLOWED")
    assert body["details"]["field"] == "workflow.4.inputs.ckpt_name"
    url = model_server.serve("/ckpt/unused.safetensors", b"unused")
    response = await sources_api.post("/v1/workflows/execute", json={
        "workflow": _from_source(5, url), "model_sources": {elsewhere: {"sha256": "0" * 64}}})
    body = assert_error(response, 400, "INVALID_REQUEST")
    assert body["details"]["field"] == f"model_sources.{elsewhere}"
    assert model_server.hits["/ckpt/unused.safetensors"] == 0
