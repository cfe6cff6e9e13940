"""The model list and preloads, against a real service over a real ComfyUI on the CPU.

The service's ComfyUI reads the engine's own models folder (the tiny SD1.5 checkpoint) plus
an extra models folder made here (extra_model_paths) with a small, valid LoRA file.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import LocalService
from tests.helpers import submit, wait_for, wait_until_finished, write_safetensors
from workloads.workflows import TINY_CHECKPOINT, inverted_image, tiny_sd15

LORA = "test-detail-lora.safetensors"
REGION = "test-region-1"
CPU_PRICE = 0.001  # per GPU-second, for the cost_breakdown check
_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
# Engine folders that ComfyUI lists under another folder name.
_FOLDER_OF_DIR = {"clip": "text_encoders", "unet": "diffusion_models",
                  "t2i_adapter": "controlnet"}
_CATEGORY_OF_FOLDER = {"checkpoints": "checkpoint", "loras": "lora", "vae": "vae",
                       "controlnet": "controlnet", "text_encoders": "text_encoder",
                       "diffusion_models": "diffusion_model", "upscale_models": "upscale_model",
                       "embeddings": "embedding"}


def write_lora(path: Path) -> None:
    """A small, valid safetensors LoRA (kohya key names, SD1.5 shapes, fp16 zeros)."""
    tensors = {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight":
            [4, 768],
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight":
            [320, 4],
    }
    write_safetensors(path, tensors, {"ss_base_model_version": "sd_v1"})


def _listed_files(models_dir: Path) -> set[tuple[str, str]]:
    """(category, filename) of every model file ComfyUI lists under a models folder."""
    found = set()
    for path in models_dir.rglob("*"):
        relative = path.relative_to(models_dir)
        if (not path.is_file() or path.suffix not in _EXTENSIONS
                or any(part.startswith(".") for part in relative.parts)):
            continue
        folder = _FOLDER_OF_DIR.get(relative.parts[0], relative.parts[0])
        found.add((_CATEGORY_OF_FOLDER.get(folder, folder), str(Path(*relative.parts[1:]))))
    return found


@pytest.fixture(scope="module")
def extra_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("extra-models")
    write_lora(folder / "loras" / LORA)
    (folder / "extra_model_paths.yaml").write_text(
        f"test_models:\n    base_path: {folder}\n    loras: loras\n")
    return folder


@pytest.fixture(scope="module")
def models_service(engine_layout: EngineLayout, extra_models: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    config = str(extra_models / "extra_model_paths.yaml")
    env = {"COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1",
           "COMFY_SERVERLESS_WORKER_REGION": REGION,
           "COMFY_SERVERLESS_GPU_PRICE_PER_SECOND": json.dumps({"cpu": CPU_PRICE}),
           "COMFY_SERVERLESS_LOG_FORMAT": "json",
           "COMFY_SERVERLESS_COMFYUI_EXTRA_ARGS": json.dumps(
               ["--extra-model-paths-config", config])}
    with LocalService.start(tmp_path_factory.mktemp("models-service"), engine_layout.root,
                            extra_env=env) as running:
        yield running


@pytest.fixture
async def models_api(models_service: LocalService) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {models_service.new_unthrottled_key()}"}
    async with httpx.AsyncClient(base_url=models_service.base_url, headers=headers,
                                 timeout=60) as client:
        yield client


async def _all_models(api: httpx.AsyncClient, **query: Any) -> list[dict[str, Any]]:
    models, offset = [], 0
    while True:
        response = await api.get("/v1/models/list", params={**query, "limit": 1,
                                                             "offset": offset})
        assert response.status_code == 200, response.text
        body = response.json()
        models += body["models"]
        if not body["pagination"]["has_more"]:
            return models
        offset += 1


async def _hashed_models(api: httpx.AsyncClient) -> list[dict[str, Any]] | None:
    models = await _all_models(api)
    return models if models and all(m["file_info"]["hash"] for m in models) else None


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


async def test_the_model_list_matches_the_workers_model_folders(
        models_api: httpx.AsyncClient, engine_layout: EngineLayout,
        extra_models: Path) -> None:
    models = await wait_for(lambda: _hashed_models(models_api), timeout=120, interval=0.5,
                            what="every model file hashed")
    expected = _listed_files(engine_layout.comfyui_dir / "models") | _listed_files(extra_models)
    assert {(m["category"], m["file_info"]["filename"]) for m in models} == expected
    by_file = {m["file_info"]["filename"]: m for m in models}
    checkpoint, lora = by_file[TINY_CHECKPOINT], by_file[LORA]
    checkpoint_path = engine_layout.comfyui_dir / "models" / "checkpoints" / TINY_CHECKPOINT
    assert checkpoint["model_id"] == "checkpoint/tiny-sd15"
    assert checkpoint["file_info"]["size_bytes"] == checkpoint_path.stat().st_size
    assert checkpoint["file_info"]["hash"] == _sha256(checkpoint_path)
    assert checkpoint["capabilities"]["architecture"] == "sd1.5"
    assert checkpoint["capabilities"]["resolution"] == "512x512"
    assert checkpoint["availability"]["regions"] == [REGION]
    assert lora["model_id"] == "lora/test-detail-lora"
    assert lora["file_info"]["hash"] == _sha256(extra_models / "loras" / LORA)
    assert lora["capabilities"]["architecture"] == "sd1.5"
    assert set(checkpoint["performance"]) == {"memory_requirement", "avg_inference_time",
                                              "cache_priority"}


async def test_filters_and_pagination(models_api: httpx.AsyncClient) -> None:
    await wait_for(lambda: _hashed_models(models_api), timeout=120, interval=0.5,
                   what="the model list")
    loras = (await models_api.get("/v1/models/list", params={"category": "lora"})).json()
    assert [m["file_info"]["filename"] for m in loras["models"]] == [LORA]
    assert loras["pagination"] == {"total": 1, "limit": 50, "offset": 0, "has_more": False}
    found = (await models_api.get("/v1/models/list", params={"search": "TINY-sd"})).json()
    assert [m["model_id"] for m in found["models"]] == ["checkpoint/tiny-sd15"]
    everything = (await models_api.get("/v1/models/list")).json()
    total = everything["pagination"]["total"]
    first = (await models_api.get("/v1/models/list", params={"limit": 1})).json()
    assert first["pagination"] == {"total": total, "limit": 1, "offset": 0,
                                   "has_more": total > 1}
    last = (await models_api.get("/v1/models/list",
                                 params={"limit": 1, "offset": total - 1})).json()
    assert last["pagination"]["has_more"] is False
    assert last["models"] == everything["models"][-1:]
    for bad in ({"category": "spaceship"}, {"limit": 0}, {"limit": 1000}, {"offset": -1}):
        response = await models_api.get("/v1/models/list", params=bad)
        assert response.status_code == 400, bad
        body = response.json()
        assert body["status"] == "error"
        assert body["error_code"] == "INVALID_REQUEST"


async def test_preload_refuses_unknown_and_unloadable_models(
        models_api: httpx.AsyncClient) -> None:
    await wait_for(lambda: _hashed_models(models_api), timeout=120, interval=0.5,
                   what="the model list")
    unknown = await models_api.post("/v1/models/preload", json={
        "models": [{"model_id": "checkpoint/tiny-sd16"}], "cache_duration": 60})
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "MODEL_NOT_FOUND"
    assert unknown.json()["details"]["suggestions"] == {
        "checkpoint/tiny-sd16": ["checkpoint/tiny-sd15"]}
    lora = await models_api.post("/v1/models/preload", json={
        "models": [{"model_id": "lora/test-detail-lora"}]})
    assert lora.status_code == 422
    assert lora.json()["error_code"] == "MODEL_NOT_PRELOADABLE"


def _load_time(status: dict[str, Any]) -> float:
    """The checkpoint's load time in one execution: its model_loaded entry, or 0 when its
    loader node was served from ComfyUI's cache."""
    for entry in status["execution_log"]:
        if entry["event"] == "model_loaded":
            return float(entry["details"]["load_time"])
    loader = [e for e in status["execution_log"]
              if e["event"] == "node_completed" and e["node_id"] == "4"]
    assert loader, status["execution_log"]
    assert loader[0]["details"].get("cached") is True, status["execution_log"]
    return 0.0


async def _run(api: httpx.AsyncClient, workflow: dict[str, Any]) -> dict[str, Any]:
    status = await wait_until_finished(api, await submit(api, workflow))
    assert status["status"] == "completed", status
    return status


async def _warm(api: httpx.AsyncClient, warm: bool) -> bool:
    models = await _all_models(api, category="checkpoint", search=TINY_CHECKPOINT[:-12])
    return bool(models) and models[0]["availability"]["warm_cache"] is warm


async def test_after_a_preload_the_next_job_loads_no_model(
        models_api: httpx.AsyncClient) -> None:
    seed = int(time.time())
    await _run(models_api, inverted_image(seed % 250))  # ComfyUI's cache: no checkpoint
    cold = _load_time(await _run(models_api, tiny_sd15(seed, steps=2)))
    await _run(models_api, inverted_image(seed % 250 + 1))  # evicts the checkpoint again
    await wait_for(lambda: _warm(models_api, False), timeout=30, what="checkpoint cold")

    response = await models_api.post("/v1/models/preload", json={
        "models": [{"model_id": "checkpoint/tiny-sd15", "priority": 9, "regions": [REGION]}],
        "cache_duration": 300})
    assert response.status_code == 202, response.text
    scheduled = response.json()["preloads"][0]
    assert scheduled["model_id"] == "checkpoint/tiny-sd15"
    assert len(scheduled["workers"]) == 1
    await wait_for(lambda: _warm(models_api, True), timeout=60, what="checkpoint preloaded")
    # Another workflow in between: the pinned checkpoint stays in ComfyUI's cache.
    await _run(models_api, inverted_image(seed % 250 + 2))
    warm_run = await _run(models_api, tiny_sd15(seed + 1, steps=2))
    warm = _load_time(warm_run)
    print(f"\ncheckpoint load time: cold {cold:.3f}s, after preload {warm:.3f}s")
    assert cold > 0.05
    assert warm == 0.0

    results = (await models_api.get(f"/v1/workflows/{warm_run['execution_id']}/results")).json()
    metrics = results["execution_metrics"]
    cost = metrics["cost_breakdown"]
    assert cost["gpu_type"] == "cpu"
    assert cost["gpu_compute"] == pytest.approx(cost["gpu_seconds"] * CPU_PRICE, abs=1e-5)
    assert cost["total"] == pytest.approx(cost["gpu_compute"])

    listed = (await _all_models(models_api, category="checkpoint"))[0]
    assert listed["performance"]["cache_priority"] == 9
    assert listed["availability"]["load_time"] is not None
    assert listed["performance"]["avg_inference_time"] is not None


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            lines.append(parsed)
    return lines


async def test_the_service_logs_json_lines_with_execution_and_worker_ids(
        models_api: httpx.AsyncClient, models_service: LocalService) -> None:
    execution_id = await submit(models_api, inverted_image(int(time.time()) % 250))
    assert (await wait_until_finished(models_api, execution_id))["status"] == "completed"

    def finished_line() -> dict[str, Any] | None:
        text = (models_service.data_dir / "service.log").read_text(errors="replace")
        return next((line for line in _json_lines(text)
                     if line.get("message") == f"execution {execution_id}: completed"), None)

    async def logged() -> dict[str, Any] | None:
        return finished_line()

    line = await wait_for(logged, timeout=10, what="the completion log line")
    assert line["execution_id"] == execution_id
    assert line["worker_id"]
    assert line["level"] == "INFO"
