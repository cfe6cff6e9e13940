"""Which model files a workflow names.

Two readings, for two uses:
- `required_models`: the `…_name` inputs of its loader nodes, the files model affinity
  wants warm on a worker;
- `model_references`: every model file it names, as "<folder>/<filename>", for the tiers'
  model groups. Loader inputs are recognised by name (ComfyUI's loaders share a small
  vocabulary); any other literal that ends in a model file extension counts too, under the
  folder `other`, so that a custom loader cannot slip a model past a tier's groups.

A pure reading of the workflow, so it lives in validation: admission, model affinity and
submission read it without the models package and the access package tying each other.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from comfy_serverless.loader_inputs import loaded_model_names
from comfy_serverless.validation.catalog import MODEL_EXTENSIONS

__all__ = ["disallowed_models", "model_references", "required_models"]


def required_models(workflow: Mapping[str, Any]) -> tuple[str, ...]:
    """Every model file the workflow's loader nodes name, sorted, each once."""
    names = set()
    for node in workflow.values():
        if isinstance(node, Mapping):
            names.update(loaded_model_names(str(node.get("class_type", "")),
                                            node.get("inputs") or {}))
    return tuple(sorted(names))


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


def model_references(graph: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Each model the graph names, once, in the order of the graph."""
    found: dict[str, None] = {}
    for node in graph.values():
        for name, value in (node.get("inputs") or {}).items():
            if not isinstance(value, str):
                continue
            folder = _FOLDER_BY_INPUT.get(name)
            if folder is None and value.lower().endswith(MODEL_EXTENSIONS):
                folder = "other"
            if folder is not None:
                found[f"{folder}/{value}"] = None
    return list(found)


def disallowed_models(references: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The references that no pattern of the tier's model groups allows."""
    allowed = tuple(patterns)
    return [reference for reference in references
            if not any(fnmatch.fnmatchcase(reference, pattern) for pattern in allowed)]
