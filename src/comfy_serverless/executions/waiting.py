"""Why a queued execution waits, when the fleet as it is now cannot run it at all: it asks
for an environment that no live worker runs, or (from its key's tier) for GPU types that no
live worker may take. The status answer carries it as `waiting_for`, so that a client whose
job sits in the queue learns why instead of guessing.

Computed only for a queued execution that asks for an environment or names GPU types, with
one read of the live workers (an index on their heartbeat: departed workers are not read).
A job that merely waits its turn, or that waits for a fleet with no live worker while
asking only for GPU types, gets no note: its turn, or a worker, will come.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from comfy_serverless.environments.requests import EnvironmentRequest
from comfy_serverless.store.records import ExecutionRecord, WorkerState
from comfy_serverless.store.store import Store

__all__ = ["waiting_for"]

NO_WORKER_WITH_ENVIRONMENT = "NO_WORKER_WITH_ENVIRONMENT"
NO_WORKER_WITH_GPU_TYPE = "NO_WORKER_WITH_GPU_TYPE"
_UNTIL = "; it stays queued until one does"


async def waiting_for(execution: ExecutionRecord, store: Store, live_since: float
                      ) -> dict[str, Any] | None:
    """The note for `execution`'s status, or None when nothing stands in its way."""
    gpu_types = _restricted_gpu_types(execution.allowed_gpu_types)
    if execution.status != "queued" or (execution.environment is None and gpu_types is None):
        return None
    workers = await store.workers.live_workers(live_since)
    if execution.environment is not None:
        wanted = EnvironmentRequest(execution.environment, execution.environment_hash)
        with_it = [worker for worker in workers
                   if wanted.matches(worker.environment, worker.environment_hash)]
        if not with_it:
            return _no_environment(wanted, workers)
        workers = with_it
    if gpu_types is None or not workers or any(_may_take(worker, gpu_types)
                                               for worker in workers):
        return None
    return {"code": NO_WORKER_WITH_GPU_TYPE,
            "message": f"No live worker{_running(execution)} may run on GPU type "
                       f"{' or '.join(gpu_types)} (what its key's tier allows){_UNTIL}",
            "gpu_types": list(gpu_types), "live_workers": len(workers)}


def _no_environment(wanted: EnvironmentRequest, workers: Sequence[WorkerState]
                    ) -> dict[str, Any]:
    message = f"No live worker has environment '{wanted}'"
    other_hashes = sorted({(worker.environment_hash or "")[:12] for worker in workers
                           if worker.environment == wanted.name})
    if other_hashes:
        message += f" (live workers run '{wanted.name}' at hash {', '.join(other_hashes)})"
    return {"code": NO_WORKER_WITH_ENVIRONMENT, "message": message + _UNTIL,
            "environment": str(wanted), "live_workers": len(workers)}


def _running(execution: ExecutionRecord) -> str:
    return "" if execution.environment is None else " with its environment"


def _restricted_gpu_types(allowed: list[str] | None) -> tuple[str, ...] | None:
    """The GPU types an execution is confined to; None when it may run on any."""
    if allowed is None or any(name.lower() == "all" for name in allowed):
        return None
    return tuple(allowed)


def _may_take(worker: WorkerState, gpu_types: Sequence[str]) -> bool:
    """As the claim decides: a worker whose operator declared no GPU type takes every tier's
    jobs; one that declared a type takes the jobs whose types name it."""
    if not worker.gpu_type_declared:
        return True
    return (worker.gpu_type or "").lower() in {name.lower() for name in gpu_types}
