"""Which inputs of a ComfyUI node name the model files it loads.

ComfyUI's loaders share a small vocabulary (`ckpt_name`, `lora_name`, `clip_name1` …), so a
loader's model files are recognised by input name. A leaf module, because two packages that
must not know each other read it: the engine's tracker (to log a model load) and validation
(to list the models a workflow needs, and to accept a model source where a file is due).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MODEL_SOURCE_SCHEMES", "is_model_source", "loaded_model_names"]

# ckpt_name, lora_name, vae_name, control_net_name, unet_name, clip_name1 …
_MODEL_INPUT = re.compile(r"_name\d*$")
# What a loader input may name instead of a file on disk (model_sources/ fetches it).
MODEL_SOURCE_SCHEMES: tuple[str, ...] = ("https://", "s3://", "hf://")


def is_model_source(value: object) -> bool:
    """Whether a loader input's value names a model source rather than a file on disk."""
    return isinstance(value, str) and value.startswith(MODEL_SOURCE_SCHEMES)


def loaded_model_names(class_type: str, inputs: Mapping[str, Any]) -> list[str]:
    """The model files one node loads: none unless it is a loader."""
    if "Loader" not in class_type:
        return []
    return [value for name, value in inputs.items()
            if _MODEL_INPUT.search(name) and isinstance(value, str)]
