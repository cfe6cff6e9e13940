"""cost_breakdown from configured prices, in results and in the completed webhook."""

from __future__ import annotations

import dataclasses

import pytest

from comfy_serverless.costs import Prices, cost_breakdown
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import ExecutionRecord, NewExecution, OutputRecord, WebhookEvent
from comfy_serverless.webhooks.payloads import event_data

PRICES = Prices({"H200": 0.001, "default": 0.0002}, storage_per_gb=0.02, bandwidth_per_gb=0.09)


def _finished(gpu_type: str | None, gpu_time: float) -> ExecutionRecord:
    queued = NewExecution(
        id="exec_1", api_key_id="key", priority=5, workflow={}, options=ExecutionOptions(),
        signature="s", webhook_url=None, client_id=None, submitted_at=100.0, max_attempts=1,
        total_nodes=1,
    ).as_queued()
    return dataclasses.replace(queued, status="completed", started_at=110.0, finished_at=130.0,
                               gpu_time=gpu_time, resource_allocation={"gpu_type": gpu_type})


def _output(size: int, *, intermediate: bool = False) -> OutputRecord:
    return OutputRecord("out", "exec_1", "9", "IMAGE", intermediate, "a.png", "image/png", size,
                        None, None, "PNG", "local", None, "outputs/exec_1/a.png", 130.0)


def test_each_part_is_its_measure_times_its_price() -> None:
    outputs = [_output(2_000_000_000), _output(500_000_000, intermediate=True)]
    cost = cost_breakdown(_finished("h200", 68.0), outputs, PRICES)
    assert cost["gpu_compute"] == pytest.approx(0.068)
    assert cost["storage"] == pytest.approx(2.5 * 0.02)
    assert cost["bandwidth"] == pytest.approx(2.0 * 0.09)
    assert cost["total"] == pytest.approx(0.068 + 0.05 + 0.18)
    assert cost["gpu_type"] == "h200"
    assert cost["currency"] == "USD"


def test_an_unlisted_gpu_type_pays_the_default_and_no_prices_cost_nothing() -> None:
    assert cost_breakdown(_finished("T4", 10.0), [], PRICES)["gpu_compute"] == pytest.approx(
        0.002)
    assert cost_breakdown(_finished(None, 10.0), [_output(10**9)], Prices())["total"] == 0.0


def test_the_completed_webhook_carries_the_cost() -> None:
    event = WebhookEvent(1, "evt_1", "exec_1", "https://example.com", "execution.completed",
                         None, None, 130.0, "pending", 0, 3, 130.0, None, None)
    data = event_data(event, _finished("H200", 20.0), [_output(1000)], lambda o: o.storage_key,
                      PRICES)
    assert data["metrics"]["cost"] == data["metrics"]["cost_breakdown"]["total"]
    assert data["metrics"]["cost_breakdown"]["gpu_compute"] == pytest.approx(0.02)
