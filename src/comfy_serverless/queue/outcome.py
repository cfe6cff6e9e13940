"""The outcome policy: what becomes of an attempt that went wrong, decided in one place.

As in River's completer, the callers only report. The executor reports a Failure of its
own attempt (an engine error, a crash, a timeout, outputs it could not store); the rescuer
reports a worker that stopped renewing its lease (worker_lost). `decide` answers, from the
failure and the attempt alone:

    retryable and attempts left ──► Retry(delay, error)   queued again after the backoff
    otherwise ────────────────────► Fail(error)            failed for good

and builds the spec's error body (`details`, `retry_info`) that the execution records either
way. Nobody else builds that body. What the callers still own is the mechanics: the guarded
store write, its log entry, and a cancel (a write the lease no longer allows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.host_paths import scrub_host_paths, scrubbed
from comfy_serverless.store.records import ExecutionRecord

__all__ = ["Attempt", "Decision", "Fail", "Failure", "Retry", "decide", "retry_delay",
           "worker_lost"]

_MAX_DELAY = 30.0


@dataclass(frozen=True)
class Failure:
    """What went wrong in one attempt. Its message and extra details are scrubbed of host
    paths when it is made (host_paths.py), so no client sees the server's folders."""

    error_type: str
    message: str
    retryable: bool
    node_id: str | None = None
    node_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", scrub_host_paths(self.message))
        object.__setattr__(self, "extra", scrubbed(self.extra))


@dataclass(frozen=True)
class Attempt:
    """Which attempt of an execution failed, of how many it is allowed."""

    execution_id: str
    number: int
    max_attempts: int

    @classmethod
    def of(cls, execution: ExecutionRecord) -> Attempt:
        return cls(execution.id, execution.attempt, execution.max_attempts)

    @property
    def retries_left(self) -> int:
        return self.max_attempts - self.number


@dataclass(frozen=True)
class Retry:
    """Queue the execution again once `delay` seconds have passed, recording `error`."""

    delay: float
    error: dict[str, Any]

    def retry_at(self, now: float) -> float:
        return now + self.delay


@dataclass(frozen=True)
class Fail:
    """Fail the execution for good with `error`."""

    error: dict[str, Any]


Decision = Retry | Fail


def retry_delay(attempt: int) -> float:
    """Backoff before attempt `attempt + 1`: 1 s, 2 s, 4 s … at most 30 s."""
    return float(min(2.0 ** max(attempt - 1, 0), _MAX_DELAY))


def decide(failure: Failure, attempt: Attempt) -> Decision:
    """Retry a retryable failure while the execution has attempts left; fail it otherwise
    (a failure that is not retryable fails at once, whatever attempts remain)."""
    if failure.retryable and attempt.retries_left > 0:
        delay = retry_delay(attempt.number)
        return Retry(delay, _error_body(failure, attempt, attempt.retries_left - 1, delay))
    return Fail(_error_body(failure, attempt, 0, None))


def worker_lost(worker_id: str | None, node_id: str | None, node_type: str | None
                ) -> Failure:
    """The failure the rescuer reports for a worker that stopped renewing its lease: always
    retryable, since the workflow itself never failed."""
    return Failure(error_type="WORKER_LOST", retryable=True, node_id=node_id,
                   node_type=node_type, extra={"worker_id": worker_id},
                   message=f"Worker {worker_id} stopped renewing its lease")


def _error_body(failure: Failure, attempt: Attempt, remaining_retries: int,
                delay: float | None) -> dict[str, Any]:
    """The spec's error body: what failed (`details`) and what happens next (`retry_info`)."""
    return {
        "error_code": "WORKFLOW_EXECUTION_FAILED",
        "message": failure.message,
        "details": {
            "execution_id": attempt.execution_id,
            "failed_node": failure.node_id,
            "node_type": failure.node_type,
            "error_type": failure.error_type,
            **failure.extra,
        },
        "retry_info": {
            "retryable": failure.retryable,
            "retry_delay": delay,
            "max_retries": attempt.max_attempts - 1,
            "remaining_retries": remaining_retries,
        },
    }
