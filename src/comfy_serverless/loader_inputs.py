"""Which inputs of a ComfyUI node name the model files it loads.

ComfyUI's loaders share a small vocabulary (`ckpt_name`, `lora_name`, `clip_name1` …), so a
loader's model files are recognised by input name. A leaf module, because two packages that
must not know each other read it: the engine's tracker (to log a model load) and validation
(to list the models a workflow needs, and to accept a model source where a file is due).

It also makes the name a file fetched by source takes in a model folder (`placed_name`) and
recognises such names (`is_placed_name`): the model cache places files under them, and the
service hides every option of that shape that no record lets a key's tier use (deny by
default, executions/catalogs.py and models/listing.py), which sit in packages that may not
import the cache's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MODEL_SOURCE_SCHEMES", "is_model_source", "is_placed_name", "loaded_model_names",
           "placed_name"]

# ckpt_name, lora_name, vae_name, control_net_name, unet_name, clip_name1 …
_MODEL_INPUT = re.compile(r"_name\d*$")
# What a loader input may name instead of a file on disk (model_sources/ fetches it).
MODEL_SOURCE_SCHEMES: tuple[str, ...] = ("https://", "s3://", "hf://")
# How many hex digits of a fetched file's sha256 start its placed name.
_PLACED_PREFIX_HEX = 12
# A placed name: 12 lowercase hex digits, a dash, then the source's file name (made of the
# characters a source's file name keeps, model_sources/sources.py: no space, no slash).
_PLACED_NAME = re.compile(rf"[0-9a-f]{{{_PLACED_PREFIX_HEX}}}-[A-Za-z0-9._-]+")
_PATH_SEPARATORS = re.compile(r"[/\\]")


def placed_name(sha256: str, basename: str) -> str:
    """The name a cached file takes in a model folder: `<first 12 hex>-<basename>`."""
    return f"{sha256[:_PLACED_PREFIX_HEX]}-{basename}"


def is_placed_name(value: object) -> bool:
    """Whether `value` has the shape of a placed name, whether or not such a file exists:
    a file of that shape is usable only where a record of its sources allows it. The last
    part of a path counts (a folder that ComfyUI lists with a subfolder), and the whole of
    it (no trailing newline)."""
    if not isinstance(value, str):
        return False
    return _PLACED_NAME.fullmatch(_PATH_SEPARATORS.split(value)[-1]) is not None


def is_model_source(value: object) -> bool:
    """Whether a loader input's value names a model source rather than a file on disk."""
    return isinstance(value, str) and value.startswith(MODEL_SOURCE_SCHEMES)


def loaded_model_names(class_type: str, inputs: Mapping[str, Any]) -> list[str]:
    """The model files one node loads: none unless it is a loader."""
    if "Loader" not in class_type:
        return []
    return [value for name, value in inputs.items()
            if _MODEL_INPUT.search(name) and isinstance(value, str)]
