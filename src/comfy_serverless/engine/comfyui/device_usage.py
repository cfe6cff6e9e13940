"""How an execution used its worker's GPU: the status `metrics.gpu_utilization` and
`metrics.memory_efficiency`.

Sampled on the worker through NVML (`nvidia-ml-py`, imported only where ComfyUI computes
on an NVIDIA GPU; never a dependency of the service) while the prompt runs:

- `gpu_utilization`: the mean of the GPU's utilization (0 to 1) over the samples;
- `memory_efficiency`: the peak GPU memory that ComfyUI's process holds (NVML's list of
  compute processes; the whole GPU's memory in use only where that list does not show
  ComfyUI's process, e.g. in another PID namespace), as a share of the memory the
  execution was allowed (its `gpu_memory_fraction` of the GPU, or all of it).

The GPU is found by the identity that comfy-serverless's hooks report from inside ComfyUI
(its UUID, else its PCI bus id): ComfyUI's CUDA index is not NVML's index under
`CUDA_VISIBLE_DEVICES` or another device order. Without the hooks, only a machine whose
NVML sees exactly one GPU is sampled. A CPU worker, a GPU without NVML, or one that cannot
be told apart reports both as null.
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
    """One NVIDIA GPU, read through NVML; `pid` is ComfyUI's process, when known."""

    def __init__(self, nvml: Any, handle: Any, pid: int | None = None) -> None:
        self._nvml = nvml
        self._handle = handle
        self._pid = pid

    @classmethod
    def for_engine(cls, stats: Mapping[str, Any] | None,
                   hooks: Mapping[str, Any] | None = None, *, nvml: Any = None
                   ) -> GpuMonitor | None:
        """A monitor of the GPU ComfyUI computes on, found by the identity its hooks report
        (`hooks`: GET /comfy-serverless/hooks); None on a CPU, without NVML, or when the GPU
        cannot be told apart."""
        if first_device(stats).get("type") != "cuda":
            return None
        identity = (hooks or {}).get("device") or {}
        try:
            if nvml is None:
                nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
            handle = _handle_of(nvml, identity)
        except Exception as exc:  # ImportError, or any NVMLError: no metrics, no failure
            log.info("GPU metrics unavailable: %s", exc)
            return None
        if handle is None:
            log.info("GPU metrics unavailable: ComfyUI's GPU cannot be told apart from the "
                     "others without comfy-serverless's hooks")
            return None
        pid = (hooks or {}).get("pid")
        return cls(nvml, handle, pid if isinstance(pid, int) else None)

    def read(self) -> GpuReading | None:
        try:
            rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
            used = self._process_memory()
        except Exception as exc:  # an NVMLError: skip this sample
            log.debug("GPU sample failed: %s", exc)
            return None
        return GpuReading(float(rates.gpu) / 100.0,
                          int(memory.used) if used is None else used, int(memory.total))

    def _process_memory(self) -> int | None:
        """The memory ComfyUI's process holds on the GPU; None when NVML does not show it."""
        if self._pid is None:
            return None
        try:
            processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except Exception:  # not supported here: the device's figure stands in
            return None
        held = [p.usedGpuMemory for p in processes
                if p.pid == self._pid and isinstance(p.usedGpuMemory, int)]
        return sum(held) if held else None


def _handle_of(nvml: Any, identity: Mapping[str, Any]) -> Any:
    """NVML's handle of the GPU with this identity (UUID, else PCI bus id); without one,
    the only GPU NVML sees, else None."""
    uuid = identity.get("uuid")
    if isinstance(uuid, str) and uuid:
        return nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-"))
                                              else f"GPU-{uuid}")
    bus_id = identity.get("pci_bus_id")
    if isinstance(bus_id, str) and bus_id:
        return nvml.nvmlDeviceGetHandleByPciBusId(bus_id)
    if nvml.nvmlDeviceGetCount() == 1:
        return nvml.nvmlDeviceGetHandleByIndex(0)
    return None


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
