"""Reading ComfyUI's /system_stats: the first device's memory and GPU type, and how memory
is shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["device_memory", "first_device", "gigabytes", "gpu_type_of", "has_gpu"]

_VENDOR_WORDS = {"NVIDIA", "GEFORCE", "TESLA", "AMD", "RADEON", "INTEL"}
_SERIES_WORDS = {"RTX", "GTX", "QUADRO", "ARC", "PRO"}


def first_device(stats: Mapping[str, Any] | None) -> Mapping[str, Any]:
    devices = (stats or {}).get("devices") or [{}]
    return devices[0] if isinstance(devices[0], Mapping) else {}


def device_memory(stats: Mapping[str, Any] | None) -> tuple[float, float]:
    """(total, free) bytes of the first device; on a CPU worker ComfyUI reports system RAM."""
    device = first_device(stats)
    return float(device.get("vram_total") or 0), float(device.get("vram_free") or 0)


def has_gpu(stats: Mapping[str, Any] | None) -> bool:
    """Whether ComfyUI computes on a GPU (its first device is not the CPU)."""
    return first_device(stats).get("type") not in (None, "", "cpu")


def gigabytes(value: float) -> str:
    return f"{value / 1024**3:.1f}GB"


def gpu_type_of(stats: Mapping[str, Any] | None) -> str | None:
    """The GPU type of the first device, as tiers name it: "cuda:0 NVIDIA H200 :
    cudaMallocAsync" → "H200", "NVIDIA A100-SXM4-80GB" → "A100", "NVIDIA GeForce RTX 4090"
    → "RTX4090", a CPU → "cpu"; None when ComfyUI names no device."""
    device = first_device(stats)
    if device.get("type") == "cpu":
        return "cpu"
    name = str(device.get("name") or "").split(" : ")[0]
    words = [w for w in name.split() if not w.lower().startswith(("cuda:", "mps", "xpu:"))]
    words = [w for w in words if w.upper() not in _VENDOR_WORDS]
    if not words:
        return None
    if words[0].upper() in _SERIES_WORDS and len(words) > 1:
        return words[0].upper() + words[1].split("-")[0]
    return words[0].split("-")[0]
