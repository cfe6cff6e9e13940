"""Reading ComfyUI's /system_stats: the first device's memory, and how it is shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["first_device", "device_memory", "gigabytes"]


def first_device(stats: Mapping[str, Any] | None) -> Mapping[str, Any]:
    devices = (stats or {}).get("devices") or [{}]
    return devices[0] if isinstance(devices[0], Mapping) else {}


def device_memory(stats: Mapping[str, Any] | None) -> tuple[float, float]:
    """(total, free) bytes of the first device; on a CPU worker ComfyUI reports system RAM."""
    device = first_device(stats)
    return float(device.get("vram_total") or 0), float(device.get("vram_free") or 0)


def gigabytes(value: float) -> str:
    return f"{value / 1024**3:.1f}GB"
