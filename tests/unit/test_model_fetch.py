"""The worker's side of model sources, without a network: what a failed fetch becomes, and
what a download reports to the execution's log."""

from __future__ import annotations

from pathlib import Path

from comfy_serverless.errors import StorageError
from comfy_serverless.model_sources import (
    CachedModel,
    DownloadFailed,
    HashMismatch,
    SourceRefused,
)
from comfy_serverless.queue.outcome import Attempt, Fail, Retry, decide
from comfy_serverless.worker.failures import submission_failure
from comfy_serverless.worker.model_fetch import DownloadReport

SOURCE = "https://127.0.0.1:8443/models/tiny.safetensors"


def test_a_network_failure_is_retried_and_a_wrong_hash_is_not() -> None:
    attempt = Attempt("exec_1", 1, 3)
    network = submission_failure(DownloadFailed(f"the download of {SOURCE} was cut"))
    assert (network.error_type, network.retryable) == ("MODEL_UNAVAILABLE", True)
    assert isinstance(decide(network, attempt), Retry)
    for final in (HashMismatch(f"{SOURCE} has sha256 …"), SourceRefused("not allowed")):
        failure = submission_failure(final)
        decision = decide(failure, attempt)
        assert (failure.error_type, failure.retryable) == ("MODEL_UNAVAILABLE", False)
        assert isinstance(decision, Fail)
        assert decision.error["details"]["error_type"] == "MODEL_UNAVAILABLE"
        assert decision.error["retry_info"]["retryable"] is False
    staged = submission_failure(StorageError("gone"))
    assert (staged.error_type, staged.retryable) == ("INPUT_UNAVAILABLE", False)


def test_a_download_logs_its_bytes_at_the_start_at_most_every_few_seconds_and_at_the_end(
        ) -> None:
    report = DownloadReport(SOURCE, "4")
    assert report.entries(0.0, None) == []  # nothing arrived: nothing to say
    report.progress(100, 1000)
    first = report.entries(1.0, None)
    assert [(entry.event, entry.details) for entry in first] == [(
        "model_downloading", {"source": SOURCE, "bytes_done": 100, "bytes_total": 1000})]
    report.progress(500, 1000)
    assert report.entries(2.0, None) == []  # within _LOG_EVERY of the last entry
    report.progress(1000, 1000)
    model = CachedModel("ef" * 32, Path("/cache/blob"), 1000, "tiny.safetensors")
    last = report.entries(3.0, model)
    assert [entry.event for entry in last] == ["model_downloading", "model_downloaded"]
    assert last[0].details == {"source": SOURCE, "bytes_done": 1000, "bytes_total": 1000}
    assert last[1].details is not None
    assert last[1].details["sha256"] == "ef" * 32


def test_a_file_found_in_the_cache_reports_nothing() -> None:
    model = CachedModel("ef" * 32, Path("/cache/blob"), 1000, "tiny.safetensors")
    assert DownloadReport(SOURCE, "4").entries(0.0, model) == []
