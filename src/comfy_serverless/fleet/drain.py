"""What a stopping worker says before it waits: which jobs it drains, and for how long."""

from __future__ import annotations

import logging
from collections.abc import Iterable

__all__ = ["log_drain"]

log = logging.getLogger("comfy_serverless.worker.worker")


def log_drain(worker_id: str, execution_ids: Iterable[str], grace: float) -> None:
    running = sorted(execution_ids)
    if not running:
        log.info("worker %s stopping: no job running, nothing to drain", worker_id)
        return
    log.info("worker %s stopping: draining %s; waits up to %.0f s for it to finish, then "
             "hands it back to the queue", worker_id, ", ".join(running), grace)
