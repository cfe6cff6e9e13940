"""Which model files a workflow names.

Two readings, for two uses:
- `required_models`: the `…_name` inputs of its loader nodes, the files model affinity
  wants warm on a worker;
- `model_references`: every model file it names, as "<folder>/<filename>", for the tiers'
  model groups. Loader inputs are recognised by name (ComfyUI's loaders share a small
  vocabulary); any other literal that ends in a model file extension counts too, under the
  folder `other`, so that a custom loader cannot slip a model past a tier's groups;
- `model_source_inputs`: the loader inputs whose value names a model source (an https URL,
  an s3 object, a Hugging Face file) rather than a published file, with the model folder
  the worker places the fetched file in. A source is governed by the tier's `model_sources`
  allowlist, not its model groups, so the two readings above leave sources out.

A pure reading of the workflow, so it lives in validation: admission, model affinity and
submission read it without the models package and the access package tying each other.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from comfy_serverless.loader_inputs import is_model_source, loaded_model_names
from comfy_serverless.validation.catalog import MODEL_EXTENSIONS
from comfy_serverless.validation.files import unwrapped

__all__ = ["MODEL_FOLDER_BY_INPUT", "SourceInput", "disallowed_models", "model_references",
           "model_source_inputs", "required_models"]


def required_models(workflow: Mapping[str, Any]) -> tuple[str, ...]:
    """Every model file the workflow's loader nodes name, sorted, each once."""
    names: set[str] = set()
    for node in workflow.values():
        if isinstance(node, Mapping):
            names.update(name for name in loaded_model_names(
                str(node.get("class_type", "")), node.get("inputs") or {})
                if not is_model_source(name))
    return tuple(sorted(names))


# The ComfyUI model folder that each loader input names a file of.
MODEL_FOLDER_BY_INPUT = {
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
        for name, wrapped in (node.get("inputs") or {}).items():
            value = unwrapped(wrapped)  # as ComfyUI reads it
            if not isinstance(value, str) or is_model_source(value):
                continue
            folder = MODEL_FOLDER_BY_INPUT.get(name)
            if folder is None and value.lower().endswith(MODEL_EXTENSIONS):
                folder = "other"
            if folder is not None:
                found[f"{folder}/{value}"] = None
    return list(found)


@dataclass(frozen=True)
class SourceInput:
    """A loader input whose value is a model source: where it is, and the model folder
    (`checkpoints`, `loras` …) the fetched file is placed in."""

    node_id: str
    input: str
    source: str
    folder: str

    @property
    def path(self) -> str:
        """The input as a refusal names it: `<node_id>.inputs.<input>`."""
        return f"{self.node_id}.inputs.{self.input}"


def model_source_inputs(graph: Mapping[str, Mapping[str, Any]]) -> list[SourceInput]:
    """Each loader input (by name, MODEL_FOLDER_BY_INPUT) whose value is a model source, in
    the order of the graph. A source in any other input is plain text to its node."""
    found = []
    for node_id, node in graph.items():
        for name, value in (node.get("inputs") or {}).items():
            folder = MODEL_FOLDER_BY_INPUT.get(name)
            if folder is not None and is_model_source(value):
                found.append(SourceInput(str(node_id), name, value, folder))
    return found


def disallowed_models(references: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The references that no pattern of the tier's model groups allows."""
    allowed = tuple(patterns)
    return [reference for reference in references
            if not any(fnmatch.fnmatchcase(reference, pattern) for pattern in allowed)]
