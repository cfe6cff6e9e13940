"""The SDK without a service: requests it builds, retries, errors, the SSE parser and the
webhook helpers (checked against the service's own signer in tests/integration)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from comfy_serverless_client import (
    Client,
    ExecutionFailed,
    NotFound,
    RateLimited,
    RetryPolicy,
    TransportError,
    verify_standard_webhook,
    verify_webhook_signature,
)
from comfy_serverless_client._core import SseParser

ACCEPTED = {"status": "accepted", "execution_id": "exec_1", "status_url": "/s",
            "cancel_url": "/c"}


def _client(handler: httpx.MockTransport, retry: RetryPolicy | None = None) -> Client:
    return Client("http://127.0.0.1:1", "comfyui_sk_x", transport=handler,
                  retry=retry or RetryPolicy(backoff=0.01))


def test_every_submit_carries_an_idempotency_key_and_a_retry_reuses_it() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("reset")
        return httpx.Response(202, json=ACCEPTED)

    with _client(httpx.MockTransport(handler)) as client:
        accepted = client.submit({"1": {"class_type": "X", "inputs": {}}}, {"seed": 3})
    assert accepted.execution_id == "exec_1"
    keys = {request.headers["Idempotency-Key"] for request in seen}
    assert len(seen) == 2
    assert len(keys) == 1
    body = json.loads(seen[0].content)
    assert body["input_overrides"] == {"seed": 3}
    assert seen[0].headers["Authorization"] == "Bearer comfyui_sk_x"


def test_retry_after_is_waited_before_the_retry() -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "1"}, json={
        "status": "error", "error_code": "RATE_LIMIT_EXCEEDED", "message": "slow down",
        "details": {"retry_after": 1}}), httpx.Response(200, json={
            "execution_id": "exec_1", "status": "queued", "progress": 0})]
    with _client(httpx.MockTransport(lambda request: answers.pop(0))) as client:
        started = time.monotonic()
        status = client.status("exec_1")
    assert status.status == "queued"
    assert time.monotonic() - started >= 1.0


def test_errors_are_typed_and_carry_the_specs_fields() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            return httpx.Response(404, json={"status": "error", "error_code": "EXECUTION_NOT_FOUND",
                                             "message": "no", "details": {"execution_id": "e"}})
        if request.url.path.endswith("/results"):
            return httpx.Response(409, json={
                "status": "error", "error_code": "EXECUTION_NOT_SUCCESSFUL", "message": "failed",
                "details": {"status": "failed"}, "retry_info": {"retryable": False}})
        return httpx.Response(429, headers={"Retry-After": "600"}, json={
            "status": "error", "error_code": "QUEUE_FULL", "message": "full", "details": {}})

    with _client(httpx.MockTransport(handler)) as client:
        with pytest.raises(NotFound) as missing:
            client.status("e")
        assert missing.value.details == {"execution_id": "e"}
        with pytest.raises(ExecutionFailed) as failed:
            client.results("e")
        assert failed.value.retry_info == {"retryable": False}
        with pytest.raises(RateLimited) as limited:  # longer than max_wait: not waited
            client.submit({"1": {}})
        assert limited.value.retry_after == 600


def test_a_broken_submit_without_retries_left_is_a_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    once = RetryPolicy(max_retries=1, backoff=0.01)
    with _client(httpx.MockTransport(handler), once) as client, pytest.raises(TransportError):
        client.submit({"1": {}})


def test_the_sse_parser_skips_heartbeats_and_reads_each_event() -> None:
    parser = SseParser()
    lines = ["retry: 1000", ": stream of exec_1", "", ": heartbeat", "", "id: 7",
             "event: progress", 'data: {"progress": 0.5}', ""]
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert [(event.id, event.event, event.data) for event in events] == [
        (7, "progress", {"progress": 0.5})]


def test_both_webhook_schemes_verify_and_a_changed_body_does_not() -> None:
    body = b'{"event_type":"execution.completed"}'
    assert verify_webhook_signature(
        body, "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest(), "s3cret")
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    signed = b"evt_1.1000." + body
    mac = base64.b64encode(hmac.new(b"k" * 24, signed, hashlib.sha256).digest()).decode()
    headers = {"webhook-id": "evt_1", "webhook-timestamp": "1000",
               "webhook-signature": f"v1,{mac}"}
    assert verify_standard_webhook(body, headers, secret, now=1010)
    assert not verify_standard_webhook(body + b" ", headers, secret, now=1010)
    assert not verify_standard_webhook(body, headers, secret, now=2000)  # a replay


def test_a_dropped_stream_resumes_after_the_last_event_it_delivered() -> None:
    requests: list[httpx.Request] = []

    def frame(number: int, kind: str) -> bytes:
        return f'id: {number}\nevent: {kind}\ndata: {{"n": {number}}}\n\n'.encode()

    def first_connection() -> Iterator[bytes]:
        yield b"retry: 1000\n\n" + frame(1, "status") + frame(2, "progress")
        raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) == 1:
            return httpx.Response(200, stream=_Chunks(first_connection()))
        resumed_after = int(request.headers["Last-Event-ID"])
        return httpx.Response(200, content=b"".join(
            frame(number, "end" if number == 4 else "log")
            for number in range(resumed_after + 1, 5)))

    with _client(httpx.MockTransport(handler)) as client:
        events = list(client.events("exec_1"))
    assert [event.id for event in events] == [1, 2, 3, 4]
    assert events[-1].event == "end"
    assert "Last-Event-ID" not in requests[0].headers
    assert requests[1].headers["Last-Event-ID"] == "2"


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
