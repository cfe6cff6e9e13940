"""What a worker knows of its ComfyUI when it runs an execution: whether it computes on a
GPU, whether it runs comfy-serverless's hooks, how to read its GPU's usage, which node
classes it runs as outputs, and the resource allocation a claim records. The executor asks
it whether an execution's tuning can be applied, and for usage samples.

A restarted ComfyUI may differ (catalog, device), so the worker hands its executor new
facts (Executor.learn) whenever it has read them again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.engine.comfyui.device_usage import GpuMonitor, GpuReading
from comfy_serverless.engine.comfyui.stats import device_memory, first_device, gigabytes, has_gpu
from comfy_serverless.engine.comfyui.tuning import EngineTuning
from comfy_serverless.errors import EngineError
from comfy_serverless.worker.failures import Failure

__all__ = ["EngineFacts", "device_facts", "read_hooks", "resource_allocation"]


@dataclass(frozen=True)
class EngineFacts:
    gpu: bool = False
    hooks: bool = False
    monitor: GpuMonitor | None = None
    # The node classes ComfyUI runs as outputs (from its catalog): each submission runs
    # them again, never answering from a cached run whose files were moved out.
    output_classes: frozenset[str] = frozenset()
    allocation: Mapping[str, Any] = field(default_factory=dict)

    def claim_allocation(self, prompt_id: str) -> dict[str, Any]:
        """What a claim records for the prompt the executor will submit."""
        return {**self.allocation, "engine_prompt_id": prompt_id}

    def refusal(self, tuning: EngineTuning) -> Failure | None:
        """A FEATURE_UNAVAILABLE failure when this engine cannot apply `tuning`."""
        unavailable = tuning.unavailable(gpu=self.gpu, hooks=self.hooks)
        if unavailable is None:
            return None
        field, reason = unavailable
        return Failure(error_type="FEATURE_UNAVAILABLE", retryable=False,
                       message=f"{field} cannot be applied on this worker: {reason}",
                       extra={"field": field})

    def sample(self) -> GpuReading | None:
        return self.monitor.read() if self.monitor is not None else None


def resource_allocation(worker_id: str, stats: dict[str, Any], gpu_type: str | None
                        ) -> dict[str, Any]:
    """The device an execution runs on, as its record shows it (from /system_stats)."""
    device = first_device(stats)
    total, free = device_memory(stats)
    return {
        "gpu_id": worker_id,
        "device": device.get("name"),
        "device_type": device.get("type"),
        "gpu_type": gpu_type,
        "gpu_memory_used": gigabytes(max(0.0, total - free)),
        "gpu_memory_total": gigabytes(total),
        "container_id": worker_id,
    }


def device_facts(facts: EngineFacts, stats: dict[str, Any], *, hooks: bool,
                 monitor: GpuMonitor | None, worker_id: str, gpu_type: str | None
                 ) -> EngineFacts:
    """`facts` with what a fresh /system_stats says: its GPU, its hooks, and the resource
    allocation a claim records."""
    return replace(facts, gpu=has_gpu(stats), hooks=hooks, monitor=monitor,
                   allocation=resource_allocation(worker_id, stats, gpu_type))


async def read_hooks(client: ComfyUIClient) -> dict[str, Any] | None:
    """What comfy-serverless's hooks in ComfyUI report (its pid, its GPU), if it runs them."""
    try:
        return await client.hooks()
    except EngineError:
        return None
