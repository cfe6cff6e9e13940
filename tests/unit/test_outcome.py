"""The outcome policy (queue/outcome.py): every way an attempt can go wrong ends in one
decision, retry or fail, with the spec's error body written in one place."""

from __future__ import annotations

import pytest

from comfy_serverless.queue.outcome import (
    Attempt,
    Fail,
    Failure,
    Retry,
    decide,
    retry_delay,
    worker_lost,
)

CRASH = Failure(error_type="ENGINE_CRASHED", message="ComfyUI exited", retryable=True,
                node_id="3", node_type="KSampler", extra={"exception_type": "RuntimeError"})


def _body(*, retryable: bool, delay: float | None, max_retries: int, remaining: int,
          ) -> dict[str, object]:
    return {
        "error_code": "WORKFLOW_EXECUTION_FAILED",
        "message": "ComfyUI exited",
        "details": {"execution_id": "exec-1", "failed_node": "3", "node_type": "KSampler",
                    "error_type": "ENGINE_CRASHED", "exception_type": "RuntimeError"},
        "retry_info": {"retryable": retryable, "retry_delay": delay,
                       "max_retries": max_retries, "remaining_retries": remaining},
    }


def test_a_retryable_failure_under_the_limit_is_retried_after_the_backoff() -> None:
    decision = decide(CRASH, Attempt("exec-1", number=2, max_attempts=4))
    assert decision == Retry(2.0, _body(retryable=True, delay=2.0, max_retries=3, remaining=1))
    assert list(decision.error) == ["error_code", "message", "details", "retry_info"]


def test_a_retryable_failure_on_the_last_attempt_fails_with_no_retries_left() -> None:
    decision = decide(CRASH, Attempt("exec-1", number=3, max_attempts=3))
    assert decision == Fail(_body(retryable=True, delay=None, max_retries=2, remaining=0))


def test_a_failure_that_is_not_retryable_fails_at_once_whatever_attempts_remain() -> None:
    crash = Failure(CRASH.error_type, CRASH.message, retryable=False, node_id="3",
                    node_type="KSampler", extra={"exception_type": "RuntimeError"})
    decision = decide(crash, Attempt("exec-1", number=1, max_attempts=5))
    assert decision == Fail(_body(retryable=False, delay=None, max_retries=4, remaining=0))


def test_a_timeout_is_never_retried() -> None:
    timeout = Failure(error_type="TIMEOUT", message="Execution exceeded its timeout of 5s",
                      retryable=False, node_id="3", node_type="KSampler")
    decision = decide(timeout, Attempt("exec-1", number=1, max_attempts=3))
    assert isinstance(decision, Fail)
    assert decision.error["details"]["error_type"] == "TIMEOUT"
    assert decision.error["retry_info"] == {"retryable": False, "retry_delay": None,
                                            "max_retries": 2, "remaining_retries": 0}


def test_a_lost_worker_is_retried_while_attempts_remain() -> None:
    lost = worker_lost("w-9", "3", "KSampler")
    decision = decide(lost, Attempt("exec-1", number=1, max_attempts=2))
    assert decision == Retry(1.0, {
        "error_code": "WORKFLOW_EXECUTION_FAILED",
        "message": "Worker w-9 stopped renewing its lease",
        "details": {"execution_id": "exec-1", "failed_node": "3", "node_type": "KSampler",
                    "error_type": "WORKER_LOST", "worker_id": "w-9"},
        "retry_info": {"retryable": True, "retry_delay": 1.0, "max_retries": 1,
                       "remaining_retries": 0},
    })


def test_a_lost_worker_on_the_last_attempt_fails_still_marked_retryable() -> None:
    decision = decide(worker_lost(None, None, None), Attempt("exec-1", 1, max_attempts=1))
    assert isinstance(decision, Fail)
    assert decision.error["message"] == "Worker None stopped renewing its lease"
    assert decision.error["details"]["worker_id"] is None
    assert decision.error["retry_info"] == {"retryable": True, "retry_delay": None,
                                            "max_retries": 0, "remaining_retries": 0}


@pytest.mark.parametrize(("attempt", "delay"), [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0),
                                                (5, 16.0), (6, 30.0), (40, 30.0)])
def test_the_backoff_doubles_up_to_thirty_seconds(attempt: int, delay: float) -> None:
    assert retry_delay(attempt) == delay


def test_a_retry_is_due_its_delay_after_now() -> None:
    decision = decide(CRASH, Attempt("exec-1", number=4, max_attempts=9))
    assert isinstance(decision, Retry)
    assert decision.retry_at(1000.0) == 1008.0


def test_the_attempt_of_an_execution_counts_its_retries_left() -> None:
    assert Attempt("exec-1", number=2, max_attempts=5).retries_left == 3


def test_a_failure_is_scrubbed_of_host_paths_before_any_body_is_built() -> None:
    failure = Failure("NODE_EXECUTION_ERROR", "cannot open /srv/secret/models/a.ckpt", False,
                      extra={"path": "/srv/secret/output/cat.png"})
    error = decide(failure, Attempt("exec-1", 1, 1)).error
    assert error["message"] == "cannot open …/a.ckpt"
    assert error["details"]["path"] == "…/cat.png"
