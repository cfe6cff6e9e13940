"""How an execution used its worker's GPU: the status `metrics.gpu_utilization` and
`metrics.memory_efficiency`.

Sampled on the worker through NVML (`nvidia-ml-py`, imported only where ComfyUI computes
on an NVIDIA GPU; never a dependency of the service) while the prompt runs:

- `gpu_utilization`: the mean of the GPU's utilization (0 to 1) over the samples;
- `memory_efficiency`: the peak GPU memory in use, as a share of the memory the execution
  was allowed (its `gpu_memory_fraction` of the GPU, or all of it).

A CPU worker, or a GPU without NVML, reports both as null.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from comfy_serverless.engine.comfyui.stats import first_device

__all__ = ["GpuMonitor", "UsageWindow"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuReading:
    utilization: float  # 0 to 1
    memory_used: int
    memory_total: int


class GpuMonitor:
    """One NVIDIA GPU, read through NVML."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self._nvml = nvml
        self._handle = handle

    @classmethod
    def for_engine(cls, stats: Mapping[str, Any] | None) -> GpuMonitor | None:
        """A monitor of the GPU ComfyUI computes on; None on a CPU, or without NVML."""
        device = first_device(stats)
        if device.get("type") != "cuda":
            return None
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
            handle = nvml.nvmlDeviceGetHandleByIndex(int(device.get("index") or 0))
        except Exception as exc:  # ImportError, or any NVMLError: no metrics, no failure
            log.info("GPU metrics unavailable: %s", exc)
            return None
        return cls(nvml, handle)

    def read(self) -> GpuReading | None:
        try:
            rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
        except Exception as exc:  # an NVMLError: skip this sample
            log.debug("GPU sample failed: %s", exc)
            return None
        return GpuReading(float(rates.gpu) / 100.0, int(memory.used), int(memory.total))


@dataclass
class UsageWindow:
    """The samples of one execution."""

    samples: int = 0
    utilization_sum: float = 0.0
    peak_memory: int = 0
    memory_total: int = 0

    def add(self, reading: GpuReading | None) -> None:
        if reading is None:
            return
        self.samples += 1
        self.utilization_sum += reading.utilization
        self.peak_memory = max(self.peak_memory, reading.memory_used)
        self.memory_total = reading.memory_total

    def metrics(self, gpu_memory_fraction: float | None) -> dict[str, float | None]:
        if not self.samples or not self.memory_total:
            return {"gpu_utilization": None, "memory_efficiency": None}
        allowed = self.memory_total * (gpu_memory_fraction or 1.0)
        return {"gpu_utilization": round(self.utilization_sum / self.samples, 4),
                "memory_efficiency": round(min(1.0, self.peak_memory / allowed), 4)}
