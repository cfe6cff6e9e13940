"""Models, without a service: workflow references, header inspection, GPU types, warmth."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from comfy_serverless.engine.comfyui.stats import gpu_type_of
from comfy_serverless.models.inspection import capabilities_of
from comfy_serverless.models.inventory import ModelInventory
from comfy_serverless.models.warmth import WarmModels
from comfy_serverless.store.models import ModelPreload
from comfy_serverless.validation.model_references import required_models
from tests.helpers import write_safetensors
from workloads.workflows import TINY_CHECKPOINT, inverted_image, tiny_sd15


def _preload(filename: str, expires_at: float, folder: str = "checkpoints") -> ModelPreload:
    return ModelPreload("pre_1", "key", f"checkpoint/{filename}", folder, filename, 5, None,
                        0.0, expires_at)


def test_required_models_are_the_loader_nodes_file_names() -> None:
    workflow = {**tiny_sd15(1), "20": {"class_type": "LoraLoader", "inputs": {
        "lora_name": "detail.safetensors", "model": ["4", 0], "clip": ["4", 1],
        "strength_model": 1.0, "strength_clip": 1.0}},
        "21": {"class_type": "DualCLIPLoader", "inputs": {
            "clip_name1": "t5.safetensors", "clip_name2": "clip_l.safetensors", "type": "flux"}}}
    assert required_models(workflow) == (
        "clip_l.safetensors", "detail.safetensors", "t5.safetensors", TINY_CHECKPOINT)
    assert required_models(inverted_image(1)) == ()


def test_capabilities_come_from_the_safetensors_header(tmp_path: Path) -> None:
    sd15 = write_safetensors(tmp_path / "a.safetensors", {
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight":
            [320, 768]})
    assert capabilities_of(sd15) == {"format": "safetensors", "architecture": "sd1.5",
                                     "resolution": "512x512", "dtype": "fp16",
                                     "parameters": 320 * 768}
    declared = write_safetensors(tmp_path / "b.safetensors", {"x": [2, 2]}, {
        "modelspec.architecture": "stable-diffusion-xl-v1-base",
        "modelspec.resolution": "1024x1024"})
    assert capabilities_of(declared)["architecture"] == "stable-diffusion-xl-v1-base"
    assert capabilities_of(declared)["resolution"] == "1024x1024"
    flux = write_safetensors(tmp_path / "c.safetensors", {"double_blocks.0.img_attn.qkv.weight":
                                                     [2, 2]})
    assert capabilities_of(flux)["architecture"] == "flux"
    pickle = tmp_path / "d.ckpt"
    pickle.write_bytes(b"not a safetensors file")
    assert capabilities_of(pickle) == {"format": "ckpt"}


def test_gpu_types_are_detected_from_the_device_name() -> None:
    def gpu(name: str, kind: str = "cuda") -> str | None:
        return gpu_type_of({"devices": [{"name": name, "type": kind}]})

    assert gpu("cuda:0 NVIDIA H200 : cudaMallocAsync") == "H200"
    assert gpu("cuda:0 NVIDIA A100-SXM4-80GB : native") == "A100"
    assert gpu("cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync") == "RTX4090"
    assert gpu("cuda:0 Tesla T4 : cudaMallocAsync") == "T4"
    assert gpu("cpu", "cpu") == "cpu"
    assert gpu_type_of(None) is None


def test_the_latest_prompt_s_models_are_warm() -> None:
    warm = WarmModels(clock=lambda: 100.0)
    assert warm.prompt_for(tiny_sd15(1)) == tiny_sd15(1)
    assert warm.current() == {TINY_CHECKPOINT}
    warm.prompt_for(inverted_image(1))
    assert warm.current() == frozenset()


def test_a_pinned_preload_rides_along_every_prompt_until_it_expires() -> None:
    now = [100.0]
    warm = WarmModels(clock=lambda: now[0])
    preload = _preload(TINY_CHECKPOINT, expires_at=200.0)
    assert warm.needing_load([preload]) == [preload]
    loader = warm.loader_prompt(preload)
    assert {node["class_type"] for node in loader.values()} == {"CheckpointLoaderSimple",
                                                               "PreviewAny"}
    prompt = warm.prompt_for(inverted_image(1))
    pinned = [node for node_id, node in prompt.items() if node_id not in inverted_image(1)]
    assert pinned == [{"class_type": "CheckpointLoaderSimple",
                       "inputs": {"ckpt_name": TINY_CHECKPOINT}}]
    assert warm.current() == {TINY_CHECKPOINT}
    assert warm.needing_load([preload]) == []
    now[0] = 201.0
    assert warm.prompt_for(inverted_image(1)) == inverted_image(1)
    assert warm.current() == frozenset()


def test_models_that_cannot_load_alone_are_never_loaded_and_a_restart_forgets() -> None:
    warm = WarmModels(clock=lambda: 100.0)
    lora = _preload("detail.safetensors", expires_at=200.0, folder="loras")
    assert warm.needing_load([lora]) == []
    checkpoint = _preload(TINY_CHECKPOINT, expires_at=200.0)
    warm.loader_prompt(checkpoint)
    warm.forget()
    assert warm.current() == frozenset()
    assert warm.needing_load([checkpoint]) == [checkpoint]


class _FakeFolders:
    """ComfyUI's /experiment/models answers, for one folder on local disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def model_folders(self) -> list[dict[str, Any]]:
        return [{"name": "checkpoints", "folders": [str(self.root)]}]

    async def model_files(self, folder: str) -> list[dict[str, Any]]:
        return [{"name": path.name, "pathIndex": 0, "size": path.stat().st_size,
                 "modified": path.stat().st_mtime} for path in sorted(self.root.iterdir())]


async def _describe_all(inventory: ModelInventory) -> int:
    described = 0
    while await inventory.describe_next():
        described += 1
    return described


async def test_hashes_are_computed_lazily_and_cached_by_path_size_and_mtime(
        tmp_path: Path) -> None:
    models, facts = tmp_path / "checkpoints", tmp_path / "model-facts.json"
    models.mkdir()
    sd15 = write_safetensors(models / "a.safetensors", {
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight":
            [320, 768]})
    (models / "b.ckpt").write_bytes(b"pickled")
    inventory = ModelInventory(_FakeFolders(models), facts)  # type: ignore[arg-type]
    assert [f.sha256 for f in await inventory.scan()] == [None, None]
    assert await _describe_all(inventory) == 2
    by_name = {f.filename: f for f in inventory.files}
    assert by_name["a.safetensors"].sha256 == hashlib.sha256(sd15.read_bytes()).hexdigest()
    assert by_name["a.safetensors"].capabilities["architecture"] == "sd1.5"  # type: ignore[index]

    restarted = ModelInventory(_FakeFolders(models), facts)  # type: ignore[arg-type]
    assert all(f.sha256 for f in await restarted.scan())
    assert await _describe_all(restarted) == 0

    (models / "b.ckpt").write_bytes(b"pickled again, and longer")
    changed = {f.filename: f for f in await restarted.scan()}
    assert changed["b.ckpt"].sha256 is None
    assert changed["a.safetensors"].sha256 == by_name["a.safetensors"].sha256
    assert await _describe_all(restarted) == 1


async def test_a_malformed_safetensors_header_means_no_capabilities(tmp_path: Path) -> None:
    models = tmp_path / "checkpoints"
    models.mkdir()
    for name, header in (("list-metadata.safetensors", {"__metadata__": ["not", "a", "dict"]}),
                         ("text-shape.safetensors", {"w": {"dtype": "F16", "shape": "abc"}})):
        encoded = json.dumps(header).encode()
        (models / name).write_bytes(struct.pack("<Q", len(encoded)) + encoded)
    inventory = ModelInventory(_FakeFolders(models))  # type: ignore[arg-type]
    await inventory.scan()
    assert await _describe_all(inventory) == 2, "both are hashed; neither stops the keeper"
    assert [(f.sha256 is not None, f.capabilities) for f in inventory.files] == [
        (True, None), (True, None)]


def test_a_preload_reaches_the_workers_of_its_regions_or_all_without_regions() -> None:
    anywhere = _preload(TINY_CHECKPOINT, expires_at=200.0)
    regional = ModelPreload("pre_2", "key", "checkpoint/tiny-sd15", "checkpoints",
                            TINY_CHECKPOINT, 5, ["us-east-1"], 0.0, 200.0)
    assert anywhere.applies_to(None)
    assert anywhere.applies_to("eu-west-1")
    assert regional.applies_to("us-east-1")
    assert not regional.applies_to("eu-west-1")
    assert not regional.applies_to(None)
