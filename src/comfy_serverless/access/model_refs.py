"""Which model files a workflow names, as "<folder>/<filename>", for the tiers' model groups.

A model is named by a literal input of a loader node. Loader inputs are recognised by their
name (ComfyUI's loaders share a small vocabulary); any other literal that ends in a model
file extension counts too, under the folder `other`, so that a custom loader cannot slip a
model past a tier's groups.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["disallowed_models", "model_references"]

_FOLDER_BY_INPUT = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "control_net_name": "controlnet",
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "model_name": "upscale_models",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "config_name": "configs",
}
_MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")


def model_references(graph: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Each model the graph names, once, in the order of the graph."""
    found: dict[str, None] = {}
    for node in graph.values():
        for name, value in (node.get("inputs") or {}).items():
            if not isinstance(value, str):
                continue
            folder = _FOLDER_BY_INPUT.get(name)
            if folder is None and value.lower().endswith(_MODEL_EXTENSIONS):
                folder = "other"
            if folder is not None:
                found[f"{folder}/{value}"] = None
    return list(found)


def disallowed_models(references: Iterable[str], patterns: Iterable[str]) -> list[str]:
    allowed = tuple(patterns)
    return [reference for reference in references
            if not any(fnmatch.fnmatchcase(reference, pattern) for pattern in allowed)]
