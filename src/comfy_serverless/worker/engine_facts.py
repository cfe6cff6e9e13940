"""What a worker knows of its ComfyUI when it runs an execution: whether it computes on a
GPU, whether it runs comfy-serverless's hooks, and how to read its GPU's usage. The
executor asks it whether an execution's tuning can be applied, and for usage samples."""

from __future__ import annotations

from dataclasses import dataclass

from comfy_serverless.engine.comfyui.device_usage import GpuMonitor, GpuReading
from comfy_serverless.engine.comfyui.tuning import EngineTuning
from comfy_serverless.worker.failures import Failure

__all__ = ["EngineFacts"]


@dataclass(frozen=True)
class EngineFacts:
    gpu: bool = False
    hooks: bool = False
    monitor: GpuMonitor | None = None

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
