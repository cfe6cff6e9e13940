"""Preloads by source, the fetched file in the model list, and tenant isolation, end to end
on a real ComfyUI on the CPU.

A loopback https server (the session's test CA) serves a copy of the tiny checkpoint under a
URL with a query string (a stand-in for a presigned URL). The `enterprise` tier may fetch
from 127.0.0.1, the `pro` tier from nowhere. The service's ComfyUI reads an extra models
folder made here, whose `.cs-cache` is the model cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import UNTHROTTLED, LocalService
from tests.helpers import assert_error, submit, wait_for, wait_until_finished
from tests.model_files import model_source_service_env
from tests.range_server import RangeServer, range_server
from tests.tls_server import LocalCertificates
from workloads.workflows import TINY_CHECKPOINT, tiny_sd15

pytestmark = pytest.mark.comfyui

_PATH = "/presigned/tiny-sd15.safetensors"
_QUERY = "?signature=do-not-show-me"


@pytest.fixture(scope="module")
def model_server(test_certificates: LocalCertificates) -> Iterator[RangeServer]:
    with range_server(test_certificates) as server:
        yield server


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("preloaded-models")


@pytest.fixture(scope="module")
def service(engine_layout: EngineLayout, models_folder: Path,
            test_certificates: LocalCertificates,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    data_dir = tmp_path_factory.mktemp("preload-sources-service")
    env = {**model_source_service_env(models_folder, data_dir / "tiers.json",
                                      test_certificates.ca_bundle,
                                      {"enterprise": ["127.0.0.1"], "pro": []}),
           "COMFY_SERVERLESS_CATALOG_REFRESH_INTERVAL": "2"}
    with LocalService.start(data_dir, engine_layout.root, extra_env=env) as running:
        yield running


def _client(service: LocalService, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=service.base_url, timeout=60,
                             headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
async def owner(service: LocalService) -> AsyncIterator[httpx.AsyncClient]:
    """A key of the tier that may fetch from the model server."""
    async with _client(service, service.new_unthrottled_key()) as client:
        yield client


@pytest.fixture
async def stranger(service: LocalService) -> AsyncIterator[httpx.AsyncClient]:
    """A key of a tier whose model groups allow every file but that may fetch from nowhere."""
    limits = [f"--limit={name}={UNTHROTTLED}" for name in (
        "requests_per_minute", "concurrent_executions", "max_queue_size", "monthly_quota")]
    async with _client(service, service.new_key("--tier", "pro", *limits)) as client:
        yield client


@pytest.fixture(scope="module")
def checkpoint(engine_layout: EngineLayout) -> tuple[Path, str]:
    path = engine_layout.models_dir / "checkpoints" / TINY_CHECKPOINT
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


async def _listed(api: httpx.AsyncClient, search: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/models/list", params={"search": search, "limit": 200})
    assert response.status_code == 200, response.text
    models: list[dict[str, Any]] = response.json()["models"]
    return models


def _pinned(pin: Path) -> bool:
    """Whether some process holds the cache's pin on a file (a shared lock that an
    exclusive one cannot take)."""
    descriptor = os.open(pin, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


@pytest.fixture(scope="module")
def preloaded(service: LocalService, model_server: RangeServer,
              checkpoint: tuple[Path, str]) -> dict[str, Any]:
    """The tiny checkpoint preloaded by source (by the owner's tier), once per module: the
    202's entry."""
    path, sha256 = checkpoint
    url = model_server.serve(_PATH + _QUERY, path)
    headers = {"Authorization": f"Bearer {service.new_unthrottled_key()}"}
    with httpx.Client(base_url=service.base_url, headers=headers, timeout=60) as api:
        response = api.post("/v1/models/preload", json={
            "models": [{"source": url, "sha256": sha256, "folder": "checkpoints",
                        "priority": 8}], "cache_duration": 600})
    assert response.status_code == 202, response.text
    entry: dict[str, Any] = response.json()["preloads"][0]
    return entry


async def test_a_preload_by_source_downloads_pins_places_and_warms_it(
        owner: httpx.AsyncClient, preloaded: dict[str, Any], model_server: RangeServer,
        checkpoint: tuple[Path, str], models_folder: Path) -> None:
    _, sha256 = checkpoint
    placed = f"{sha256[:12]}-tiny-sd15.safetensors"
    display = model_server.base_url + _PATH
    assert preloaded["source"] == display  # no query string
    assert (preloaded["sha256"], preloaded["folder"]) == (sha256, "checkpoints")
    assert preloaded["model_id"] == f"checkpoint/{placed.removesuffix('.safetensors')}"
    assert len(preloaded["workers"]) == 1

    async def warm_entry() -> dict[str, Any] | None:
        models = await _listed(owner, sha256[:12])
        return models[0] if models and models[0]["availability"]["warm_cache"] else None

    listed = await wait_for(warm_entry, timeout=120, what="the preloaded source warm")
    assert listed["model_id"] == preloaded["model_id"]
    assert listed["file_info"] == {"filename": placed, "size_bytes": checkpoint[0].stat().st_size,
                                   "hash": f"sha256:{sha256}", "folder": "checkpoints",
                                   "source": display}
    assert listed["performance"]["cache_priority"] == 8
    assert model_server.hits[_PATH + _QUERY] == 1
    assert (models_folder / "checkpoints" / placed).is_symlink()
    assert _pinned(models_folder / ".cs-cache" / "pins" / sha256)

    # A job by the same source finds it on disk and downloads nothing.
    workflow = tiny_sd15(7, steps=1)
    workflow["4"]["inputs"]["ckpt_name"] = model_server.base_url + _PATH + _QUERY
    done = await wait_until_finished(owner, await submit(
        owner, workflow, model_sources={workflow["4"]["inputs"]["ckpt_name"]:
                                        {"sha256": sha256}}), timeout=300)
    assert done["status"] == "completed", done.get("error")
    assert model_server.hits[_PATH + _QUERY] == 1


async def test_another_tenant_neither_sees_nor_names_the_fetched_file(
        owner: httpx.AsyncClient, stranger: httpx.AsyncClient, preloaded: dict[str, Any],
        model_server: RangeServer, checkpoint: tuple[Path, str]) -> None:
    _, sha256 = checkpoint
    placed = f"{sha256[:12]}-tiny-sd15.safetensors"

    def by_placed_name(api: httpx.AsyncClient) -> dict[str, Any]:
        workflow = tiny_sd15(11, steps=1)
        workflow["4"]["inputs"]["ckpt_name"] = placed
        return workflow

    async def owner_may_run_it() -> str | None:  # the catalog offers it once refreshed
        response = await owner.post("/v1/workflows/execute",
                                    json={"workflow": by_placed_name(owner)})
        return str(response.json()["execution_id"]) if response.status_code == 202 else None

    execution_id = await wait_for(owner_may_run_it, timeout=120, interval=0.5,
                                  what="the placed file in the catalog")
    done = await wait_until_finished(owner, execution_id, timeout=300)
    assert done["status"] == "completed", done.get("error")

    assert await _listed(stranger, sha256[:12]) == []
    everything = json.dumps(await _listed(stranger, ""))
    assert placed not in everything
    assert model_server.base_url not in everything

    # Refused as a file that no worker has, word for word: the answer does not tell that
    # another tenant fetched it.
    refused = assert_error(await stranger.post(
        "/v1/workflows/execute", json={"workflow": by_placed_name(stranger)}),
        422, "WORKFLOW_NOT_RUNNABLE")
    never_fetched = by_placed_name(stranger)
    never_fetched["4"]["inputs"]["ckpt_name"] = "0" * 12 + placed[12:]
    unknown = assert_error(await stranger.post(
        "/v1/workflows/execute", json={"workflow": never_fetched}),
        422, "WORKFLOW_NOT_RUNNABLE")
    def answer(body: dict[str, Any]) -> str:
        return json.dumps([body["message"], body["details"]])

    assert answer(refused).replace(placed, "0" * 12 + placed[12:]) == answer(unknown)

    misspelt = by_placed_name(stranger)
    misspelt["4"]["inputs"]["ckpt_name"] = placed.replace("tiny", "tinny")
    offered = assert_error(await owner.post("/v1/workflows/execute",
                                             json={"workflow": misspelt}),
                           422, "WORKFLOW_NOT_RUNNABLE")
    assert placed in json.dumps(offered["details"])  # its owner is offered it
    hinted = assert_error(await stranger.post("/v1/workflows/execute",
                                              json={"workflow": misspelt}),
                          422, "WORKFLOW_NOT_RUNNABLE")
    assert placed not in json.dumps(hinted["details"])  # no "did you mean" offers it

    by_id = assert_error(await stranger.post("/v1/models/preload", json={
        "models": [{"model_id": preloaded["model_id"]}]}), 404, "MODEL_NOT_FOUND")
    assert by_id["details"]["unknown_models"] == [preloaded["model_id"]]
    assert preloaded["model_id"] not in by_id["details"]["suggestions"][preloaded["model_id"]]
    by_source = assert_error(await stranger.post("/v1/models/preload", json={
        "models": [{"source": model_server.base_url + _PATH, "folder": "checkpoints"}]}),
        403, "MODEL_NOT_ALLOWED")
    assert by_source["details"]["field"] == "models[0].source"


async def test_a_preload_by_source_is_checked_as_a_job_source_is(
        owner: httpx.AsyncClient) -> None:
    internal = assert_error(await owner.post("/v1/models/preload", json={
        "models": [{"source": "https://models.example.com/a.safetensors",
                    "folder": "checkpoints"}]}), 403, "MODEL_NOT_ALLOWED")
    assert internal["details"]["field"] == "models[0].source"
    unreadable = assert_error(await owner.post("/v1/models/preload", json={
        "models": [{"source": "https://127.0.0.1/", "folder": "checkpoints"}]}),
        400, "INVALID_REQUEST")
    assert unreadable["details"]["field"] == "models[0].source"
    folder = assert_error(await owner.post("/v1/models/preload", json={
        "models": [{"source": "https://127.0.0.1/a.safetensors", "folder": "../etc"}]}),
        400, "INVALID_REQUEST")
    assert folder["details"]["field"] == "models[0].folder"
    both = await owner.post("/v1/models/preload", json={
        "models": [{"model_id": "checkpoint/x", "source": "https://127.0.0.1/a.safetensors"}]})
    assert both.status_code in (400, 422), both.text
    assert both.json()["status"] == "error"
