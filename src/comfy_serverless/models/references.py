"""Which model files a workflow loads: the `…_name` inputs of its loader nodes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["loaded_model_names", "required_models"]

# ckpt_name, lora_name, vae_name, control_net_name, unet_name, clip_name1 …
_MODEL_INPUT = re.compile(r"_name\d*$")


def loaded_model_names(class_type: str, inputs: Mapping[str, Any]) -> list[str]:
    """The model files one node loads: none unless it is a loader."""
    if "Loader" not in class_type:
        return []
    return [value for name, value in inputs.items()
            if _MODEL_INPUT.search(name) and isinstance(value, str)]


def required_models(workflow: Mapping[str, Any]) -> tuple[str, ...]:
    """Every model file the workflow's loader nodes name, sorted, each once."""
    names = set()
    for node in workflow.values():
        if isinstance(node, Mapping):
            names.update(loaded_model_names(str(node.get("class_type", "")),
                                            node.get("inputs") or {}))
    return tuple(sorted(names))
