"""What a model file says about itself: its sha256, and capabilities read from a safetensors
header (architecture, native resolution, weight dtype, parameter count). Blocking file
reads: the worker runs these in a thread, never on its event loop."""

from __future__ import annotations

import hashlib
import json
import struct
from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

__all__ = ["capabilities_of", "file_sha256", "read_safetensors_header"]

_HEADER_LIMIT = 64 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024

# The native resolution of each architecture family.
_RESOLUTIONS = {"sd1.5": "512x512", "sd2": "768x768", "sdxl": "1024x1024", "sd3": "1024x1024",
                "flux": "1024x1024"}
# The width of the text conditioning that a UNet's cross-attention takes.
_CONTEXT_WIDTHS = {768: "sd1.5", 1024: "sd2", 2048: "sdxl"}
# kohya's ss_base_model_version values.
_KOHYA_BASES = {"sd_v1": "sd1.5", "sd_v2": "sd2", "sdxl_base_v1-0": "sdxl", "flux1": "flux",
                "sd3": "sd3"}
_DTYPES = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F8_E4M3": "fp8", "F8_E5M2": "fp8"}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_safetensors_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a safetensors file, or None if it is not one."""
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return None
            (length,) = struct.unpack("<Q", prefix)
            if length > _HEADER_LIMIT:
                return None
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def _architecture_from_tensors(tensors: dict[str, Any]) -> str | None:
    names = tensors.keys()
    if any(".double_blocks." in name or name.startswith("double_blocks.") for name in names):
        return "flux"
    if any(".joint_blocks." in name or name.startswith("joint_blocks.") for name in names):
        return "sd3"
    if any(name.startswith("conditioner.embedders.1") for name in names):
        return "sdxl"
    for name, info in tensors.items():
        shape = info.get("shape") if isinstance(info, dict) else None
        cross_attention = name.endswith("attn2.to_k.weight") or name.endswith(
            "attn2_to_k.lora_down.weight")
        if cross_attention and isinstance(shape, list) and len(shape) == 2:
            return _CONTEXT_WIDTHS.get(int(shape[1]))
    return None


def _architecture(metadata: dict[str, Any], tensors: dict[str, Any]) -> str | None:
    declared = metadata.get("modelspec.architecture")
    if isinstance(declared, str) and declared:
        return declared
    kohya = _KOHYA_BASES.get(str(metadata.get("ss_base_model_version", "")))
    return kohya or _architecture_from_tensors(tensors)


def _resolution(metadata: dict[str, Any], architecture: str | None) -> str | None:
    declared = metadata.get("modelspec.resolution")
    if isinstance(declared, str) and declared:
        return declared
    return _RESOLUTIONS.get(architecture or "")


def capabilities_of(path: Path) -> dict[str, Any]:
    """What the file's header tells; for other formats, only the format."""
    file_format = path.suffix.lstrip(".").lower() or "unknown"
    header = read_safetensors_header(path) if file_format in ("safetensors", "sft") else None
    if header is None:
        return {"format": file_format}
    metadata = header.get("__metadata__") or {}
    tensors = {name: info for name, info in header.items() if name != "__metadata__"}
    architecture = _architecture(metadata, tensors)
    dtypes = Counter(str(info.get("dtype")) for info in tensors.values() if isinstance(info, dict))
    capabilities: dict[str, Any] = {
        "format": "safetensors",
        "architecture": architecture,
        "resolution": _resolution(metadata, architecture),
        "dtype": _DTYPES.get(dtypes.most_common(1)[0][0]) if dtypes else None,
        "parameters": sum(prod(info.get("shape") or [1]) for info in tensors.values()
                          if isinstance(info, dict)),
    }
    return {name: value for name, value in capabilities.items() if value is not None}
