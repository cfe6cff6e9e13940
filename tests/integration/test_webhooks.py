"""Webhooks end to end on SQLite and PostgreSQL: outbox rows written by state changes, a real
dispatcher, and a receiver on loopback that verifies every delivery two ways."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import (
    NewExecution,
    OutputRecord,
    ProgressSnapshot,
    WorkerState,
)
from comfy_serverless.store.store import Store
from comfy_serverless.testing import free_port
from comfy_serverless.webhooks.dispatcher import DispatcherConfig, WebhookDispatcher
from comfy_serverless.webhooks.ssrf import UnsafeDestination, WebhookPolicy, check_destination
from comfy_serverless.webhooks.system_events import (
    CapacityMonitor,
    announce_maintenance,
    model_changes,
)
from tests.helpers import wait_for
from workloads.workflows import inverted_image

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()
LOOPBACK = WebhookPolicy(require_https=False, allowed_networks=("127.0.0.1/32",))


def verify_webhook_signature(payload: str, signature: str, secret: str) -> bool:
    expected_signature = hmac.new(
        secret.encode(),
        payload.encode(),
        hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(f"sha256={expected_signature}", signature)


@dataclass
class Receiver:
    url: str
    answers: list[int] = field(default_factory=list)
    retry_after: str | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        spec_ok = verify_webhook_signature(raw.decode(), request.headers["X-Webhook-Signature"],
                                           SECRET)
        Webhook(SECRET).verify(raw, dict(request.headers))
        self.verified.append(spec_ok)
        status = self.answers.pop(0) if self.answers else 200
        if status == 200:
            self.received.append(json.loads(raw))
        headers = {"Retry-After": self.retry_after} if self.retry_after else None
        return web.Response(status=status, headers=headers)

    def types_for(self, execution_id: str) -> list[str]:
        return [e["event_type"] for e in self.received if e["execution_id"] == execution_id]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}/hook")
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield receiver
    await runner.cleanup()


def dispatcher_for(store: Store, tmp_path: Path) -> WebhookDispatcher:
    storage = LocalStorage(tmp_path / "storage", UrlSigner("s"))
    config = DispatcherConfig(policy=LOOPBACK, base_url="http://127.0.0.1:8000",
                              signed_url_ttl=3600, backoff_seconds=0.05, poll_interval=0.02)
    return WebhookDispatcher(store, storage, config)


async def _execution(store: Store, url: str, *, secret: str | None = SECRET,
                     max_retries: int = 3) -> str:
    key = issue_key("secret", "basic").record
    await store.access.create_api_key(key)
    execution = NewExecution(
        id=new_execution_id(), api_key_id=key.id, priority=5, workflow=inverted_image(1),
        options=ExecutionOptions(), signature="s", webhook_url=url, client_id=None,
        submitted_at=time.time(), max_attempts=1, total_nodes=3, webhook_secret=secret,
        webhook_max_retries=max_retries)
    await store.executions.create_execution(execution)
    return execution.id


async def _run_to_completion(store: Store) -> None:
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    assert await store.claims.complete(claimed.lease, [], ProgressSnapshot(1, None, None, 2, 2, 3),
                                       0.5)


async def _drain(dispatcher: WebhookDispatcher, until: Any, timeout: float = 10) -> None:
    async def done() -> bool:
        await dispatcher.run_once()
        return bool(await until())

    await wait_for(done, timeout=timeout, interval=0.02, what="webhook deliveries")


async def test_every_delivery_verifies_with_both_verifiers(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    execution_id = await _execution(store, receiver.url)
    await _run_to_completion(store)
    dispatcher = dispatcher_for(store, tmp_path)

    async def both() -> bool:
        return len(receiver.received) == 2

    await _drain(dispatcher, both)
    await dispatcher.stop()
    assert receiver.types_for(execution_id) == ["execution.started", "execution.completed"]
    assert all(receiver.verified)
    completed = receiver.received[1]
    assert set(completed) == {"event_type", "event_id", "timestamp", "execution_id", "data",
                              "delivery_attempt", "max_retries"}
    assert completed["event_id"].startswith("evt_")
    assert completed["data"]["status"] == "completed"
    assert completed["data"]["results"]["output_count"] == 0
    assert (completed["delivery_attempt"], completed["max_retries"]) == (1, 3)


class _CountingStorage(LocalStorage):
    signed: list[str]

    async def download_path(self, location: StoredLocation, expires: int) -> str:
        self.signed.append(location.key)
        return await super().download_path(location, expires)


async def test_completed_payloads_sign_only_the_final_outputs(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    execution_id = await _execution(store, receiver.url)
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    outputs = [OutputRecord(
        id=f"out_{index}", execution_id=execution_id, node_id="9", output_type="IMAGE",
        intermediate=intermediate, filename=f"{index}.png", content_type="image/png",
        size_bytes=1, width=None, height=None, format="PNG", storage_provider="local",
        storage_bucket=None, storage_key=f"outputs/{execution_id}/{index}.png",
        created_at=time.time()) for index, intermediate in enumerate((False, True))]
    assert await store.claims.complete(claimed.lease, outputs,
                                       ProgressSnapshot(1, None, None, 2, 2, 3),
                                       0.5)
    storage = _CountingStorage(tmp_path / "storage", UrlSigner("s"))
    storage.signed = []
    config = DispatcherConfig(policy=LOOPBACK, base_url="http://127.0.0.1:8000",
                              signed_url_ttl=3600, backoff_seconds=0.05, poll_interval=0.02)
    dispatcher = WebhookDispatcher(store, storage, config)

    async def both() -> bool:
        return len(receiver.received) == 2

    await _drain(dispatcher, both)
    await dispatcher.stop()
    [url] = receiver.received[1]["data"]["results"]["output_urls"]
    assert url.startswith(f"http://127.0.0.1:8000/files/outputs/{execution_id}/0.png?")
    assert storage.signed == [f"outputs/{execution_id}/0.png"]


async def test_a_receiver_failing_twice_gets_the_third_attempt(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    execution_id = await _execution(store, receiver.url)
    receiver.answers = [500, 500]
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    dispatcher = dispatcher_for(store, tmp_path)

    async def delivered() -> bool:
        return bool(receiver.received)

    await _drain(dispatcher, delivered)
    await dispatcher.stop()
    [event] = receiver.received
    assert event["delivery_attempt"] == 3
    events, deliveries = await store.webhooks.log(execution_id)
    assert [d.attempt for d in deliveries] == [1, 2, 3]
    assert [d.status_code for d in deliveries] == [500, 500, 200]
    assert events[0].status == "delivered"


async def test_a_receiver_always_down_is_tried_max_retries_then_can_be_redelivered(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}/hook"
    execution_id = await _execution(store, down, max_retries=3)
    assert await store.claims.claim_next("w1", 30) is not None
    dispatcher = dispatcher_for(store, tmp_path)

    async def failed() -> bool:
        events, _ = await store.webhooks.log(execution_id)
        return events[0].status == "failed"

    await _drain(dispatcher, failed)
    events, deliveries = await store.webhooks.log(execution_id)
    assert [d.attempt for d in deliveries] == [1, 2, 3]
    assert all(d.status_code is None and d.error for d in deliveries)
    assert await store.webhooks.redeliver(events[0].id, execution_id, 3)
    events, _ = await store.webhooks.log(execution_id)
    assert (events[0].status, events[0].max_retries) == ("pending", 6)
    await dispatcher.stop()


async def test_a_dispatcher_killed_mid_schedule_is_replaced_and_delivers(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    execution_id = await _execution(store, receiver.url)
    assert await store.claims.claim_next("w1", 30) is not None
    receiver.answers = [503]
    first = dispatcher_for(store, tmp_path)
    assert await first.run_once() == 1
    await first.stop()
    # A dispatcher that claimed the retry and died before sending: its lease must expire.
    async def claimed_by_a_doomed_dispatcher() -> list[Any]:
        return await store.webhooks.claim("dead-dispatcher", 0.2, 10)

    [stranded] = await wait_for(claimed_by_a_doomed_dispatcher, timeout=5,
                                what="the retry to fall due")
    second = dispatcher_for(store, tmp_path)

    async def delivered() -> bool:
        return bool(receiver.received)

    await _drain(second, delivered)
    await second.stop()
    [event] = receiver.received
    assert event["event_id"] == stranded.id
    assert event["delivery_attempt"] == 2
    assert receiver.types_for(execution_id) == ["execution.started"]


async def test_started_arrives_before_the_terminal_event_of_every_execution(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    ids = [await _execution(store, receiver.url) for _ in range(10)]
    receiver.answers = [500, 200, 500, 500]
    for _ in ids:
        await _run_to_completion(store)
    dispatcher = dispatcher_for(store, tmp_path)

    async def all_delivered() -> bool:
        return len(receiver.received) == 2 * len(ids)

    await _drain(dispatcher, all_delivered, timeout=20)
    await dispatcher.stop()
    for execution_id in ids:
        assert receiver.types_for(execution_id) == ["execution.started", "execution.completed"]


@pytest.mark.parametrize(("url", "policy"), [
    ("https://10.1.2.3/hook", WebhookPolicy()),  # refused, never contacted
    ("https://169.254.169.254/latest/meta-data", WebhookPolicy()),  # refused, never contacted
    ("https://[::1]/hook", WebhookPolicy()),
    ("https://localhost/hook", WebhookPolicy()),
    ("http://127.0.0.1/hook", WebhookPolicy(allowed_networks=("127.0.0.1/32",))),
    ("ftp://127.0.0.1/hook", LOOPBACK),
])
async def test_internal_or_plain_destinations_are_refused_without_connecting(
    url: str, policy: WebhookPolicy
) -> None:
    with pytest.raises(UnsafeDestination):
        await check_destination(url, policy)


async def test_an_allowlisted_loopback_destination_passes() -> None:
    await check_destination("http://127.0.0.1:9/hook", LOOPBACK)


async def test_system_events_reach_the_endpoints_that_asked_for_them(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    key = issue_key("secret", "pro").record
    await store.access.create_api_key(key)
    wanted = await store.webhooks.register(key.id, receiver.url, SECRET,
                                           ["system.maintenance"], 10)
    await store.webhooks.register(key.id, receiver.url, SECRET, ["model.updated"], 10)
    assert await announce_maintenance(store, "Upgrading GPUs", None, None, 3) == 1
    dispatcher = dispatcher_for(store, tmp_path)

    async def delivered() -> bool:
        return bool(receiver.received)

    await _drain(dispatcher, delivered)
    [event] = receiver.received
    assert event["event_type"] == "system.maintenance"
    assert event["data"]["message"] == "Upgrading GPUs"
    assert event["execution_id"] is None
    assert all(receiver.verified)
    receiver.answers = [410]
    await announce_maintenance(store, "Again", None, None, 3)

    async def disabled() -> bool:
        [endpoint] = [e for e in await store.webhooks.endpoints(key.id) if e["id"] == wanted]
        return endpoint["disabled_at"] is not None

    await _drain(dispatcher, disabled)
    await dispatcher.stop()
    assert await announce_maintenance(store, "Once more", None, None, 3) == 0


async def test_capacity_crossings_are_announced_once(store: Store, receiver: Receiver) -> None:
    key = issue_key("secret", "pro").record
    await store.access.create_api_key(key)
    await store.webhooks.register(key.id, receiver.url, SECRET, ["system.capacity"], 10)
    monitors = [CapacityMonitor(store, thresholds=[0.0, 0.25], live_window=60, interval=1,
                                max_retries=3) for _ in range(2)]
    for worker_id in ("w1", "w2"):
        await store.workers.heartbeat_worker(WorkerState(worker_id, "idle", None, None, None))
    assert not await monitors[0].run_once(), "the first observation sets the baseline"
    for worker_id in ("w1", "w2"):
        await store.workers.heartbeat_worker(WorkerState(worker_id, "busy", None, None, "exec_x"))
    fired = [await monitor.run_once() for monitor in monitors]
    assert fired == [True, False], "exactly one replica announces a crossing"
    [event] = await store.webhooks.claim("check", 1, 10)
    assert event.event_type == "system.capacity"
    assert event.payload is not None
    assert json.loads(event.payload)["available_fraction"] == 0.0


def test_model_changes_between_two_catalogs() -> None:
    info = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "object_info.json")
                      .read_text())
    before = json.loads(json.dumps(info))
    before["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["a.safetensors"]
    after = json.loads(json.dumps(info))
    after["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["b.safetensors"]
    changes = model_changes(before, after)
    assert "b.safetensors" in changes["added"]
    assert "a.safetensors" in changes["removed"]


async def test_retry_after_is_honoured_on_429(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    execution_id = await _execution(store, receiver.url)
    assert await store.claims.claim_next("w1", 30) is not None
    receiver.answers = [429]
    receiver.retry_after = "7"
    dispatcher = dispatcher_for(store, tmp_path)
    before = time.time()
    assert await dispatcher.run_once() == 1
    await dispatcher.stop()
    [event], [delivery] = await store.webhooks.log(execution_id)
    assert delivery.status_code == 429
    assert event.status == "pending"
    assert 6.5 <= event.next_attempt_at - before <= 8
