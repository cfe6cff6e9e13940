"""At submit: refuse an `execution_config` that no live worker can apply.

A GPU memory share (`gpu_memory_fraction`) needs a GPU. When workers are live and none of
them reports a GPU in its published `/system_stats`, the request is refused at once with
`422 FEATURE_UNAVAILABLE`, rather than queued for a worker that would refuse it. With no
live worker (a fleet that scales from zero), the request is queued, and the worker that
claims it decides (engine/comfyui/tuning.py): it fails the execution with
`FEATURE_UNAVAILABLE` if it cannot apply it.
"""

from __future__ import annotations

from comfy_serverless.engine.comfyui.stats import has_gpu
from comfy_serverless.engine.comfyui.tuning import EngineTuning
from comfy_serverless.executions.requests import RunRequest
from comfy_serverless.executions.submission import FeatureUnavailable
from comfy_serverless.store.store import Store

__all__ = ["refuse_unavailable_tuning"]


async def refuse_unavailable_tuning(config: RunRequest, store: Store,
                                    live_since: float) -> None:
    tuning = EngineTuning(config.gpu_memory_fraction, config.enable_optimization)
    refusal = tuning.unavailable(gpu=False, hooks=True)
    if refusal is None:
        return
    workers = await store.workers.live_workers(live_since)
    if not workers or any(has_gpu(worker.system_stats) for worker in workers):
        return
    field, reason = refusal
    raise FeatureUnavailable(
        f"{field} cannot be applied: {reason}, and none of the {len(workers)} live "
        "worker(s) has a GPU",
        {"field": field, "live_workers": len(workers), "gpu_workers": 0})
