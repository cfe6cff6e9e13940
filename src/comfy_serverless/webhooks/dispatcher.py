"""The dispatcher: delivers the outbox's events, signs each attempt, logs every one.

At-least-once: an event is delivered until a receiver answers 2xx or its attempts
(`max_retries`) are spent; a duplicate (a dispatcher that died after sending, before
recording) carries the same `event_id`. Per execution, events go out in the order they were
written: an event waits while an earlier one of its execution is still undelivered.

Isolation: each claimed event is delivered in its own task, and a pass claims only as many
events as there are free slots (`concurrency`), so a receiver that never answers holds one
slot until the timeout, never a whole batch. No more than `per_destination` deliveries to
one destination (the canonical scheme://host:port, however the URL spells it) and no more
than `per_key` for one API key are in flight at once (across dispatchers), so neither one
dead receiver nor one tenant with many receivers can take every slot. The DNS lookup counts
within the delivery's timeout. A receiver's reply is read to `reply_max_bytes` at
most, then the connection is closed; the delivery log keeps that much of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import ssl
import time
from dataclasses import dataclass, field

import httpx

from comfy_serverless.background import BackgroundService
from comfy_serverless.costs import Prices
from comfy_serverless.logs import execution_context
from comfy_serverless.storage.base import OutputStorage, download_url
from comfy_serverless.store.records import OutputRecord, WebhookEvent
from comfy_serverless.store.store import Store
from comfy_serverless.webhooks.outbound import (
    OutboundError,
    OutboundRequest,
    Reply,
    outbound_client,
    pinned_stream,
    read_capped,
)
from comfy_serverless.webhooks.payloads import event_body, event_data, linked_outputs
from comfy_serverless.webhooks.signing import signature_headers
from comfy_serverless.webhooks.ssrf import UnsafeDestination, WebhookPolicy, check_destination

__all__ = ["DispatcherConfig", "WebhookDispatcher"]

log = logging.getLogger(__name__)

_MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class DispatcherConfig:
    policy: WebhookPolicy
    base_url: str
    signed_url_ttl: int
    backoff_seconds: float = 2.0
    timeout: float = 10.0
    poll_interval: float = 0.25
    concurrency: int = 100
    per_destination: int = 4
    per_key: int = 8
    reply_max_bytes: int = 4096
    lease_seconds: float = 60.0
    prices: Prices = field(default_factory=Prices)
    owner: str = f"dispatcher-{socket.gethostname()}"


@dataclass(frozen=True)
class _Attempt:
    status_code: int | None
    latency_ms: float | None
    error: str | None
    retry_after: float | None = None
    reply: Reply | None = None

    @property
    def response(self) -> tuple[str, bool] | None:
        """The start of the reply as text for the delivery log, and whether it went on."""
        if self.reply is None:
            return None
        text = self.reply.body.decode("utf-8", "replace").replace("\x00", "\ufffd")
        return text, self.reply.truncated  # a database text column takes no NUL


class WebhookDispatcher(BackgroundService):
    name = "webhook-dispatcher"

    def __init__(self, store: Store, storage: OutputStorage, config: DispatcherConfig) -> None:
        super().__init__(config.poll_interval)
        self._store = store
        self._storage = storage
        self._config = config
        self._client: httpx.AsyncClient | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Let the deliveries in flight finish (each is bounded by the timeout)."""
        await self.drain()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def drain(self) -> None:
        """Wait until every delivery started so far has been attempted and recorded."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def run_once(self) -> int:
        """Claim as many due events as there are free slots and start delivering each in its
        own task; how many were started."""
        free = self._config.concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        events = await self._store.webhooks.claim(
            self._config.owner, self._config.lease_seconds, free,
            self._config.per_destination, self._config.per_key)
        for event in events:
            task = asyncio.create_task(self._deliver(event), name=f"webhook {event.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(events)

    async def _deliver(self, event: WebhookEvent) -> None:
        with execution_context(event.execution_id):
            try:
                await self._attempt(event)
            except Exception:  # one event's failure must never end the others
                log.exception("webhook %s could not be attempted", event.id)

    async def _attempt(self, event: WebhookEvent) -> None:
        attempt = event.attempts + 1
        data = await self._frozen_data(event)
        body = json.dumps(event_body(event, data, attempt), separators=(",", ":")).encode()
        held, secret = await self._store.webhooks.delivery_secret(event.id, self._config.owner)
        if not held:
            return  # its endpoint was deleted (or its lease lost) since the claim
        result = await self._send(event.url, body, secret, event.id)
        outcome, next_at = self._next_step(event, attempt, result)
        await self._store.webhooks.record_attempt(
            event, self._config.owner, attempt=attempt, status_code=result.status_code,
            latency_ms=result.latency_ms, error=result.error, outcome=outcome,
            next_attempt_at=next_at, response=result.response)
        if result.status_code == 410 and event.endpoint_id is not None:
            await self._store.webhooks.disable_endpoint_of(event.id, "the receiver answered 410")
        if outcome == "failed":
            log.warning("webhook %s (%s) failed after %d attempt(s): %s", event.id,
                        event.event_type, attempt, result.error or result.status_code)

    def _next_step(self, event: WebhookEvent, attempt: int, result: _Attempt
                   ) -> tuple[str, float]:
        now = time.time()
        if result.status_code is not None and 200 <= result.status_code < 300:
            return "delivered", now
        if result.status_code == 410 or attempt >= event.max_retries:
            return "failed", now
        delay = result.retry_after
        if delay is None:
            base = self._config.backoff_seconds * 2 ** (attempt - 1)
            delay = min(base * random.uniform(0.5, 1.5), _MAX_BACKOFF)
        return "pending", now + delay

    async def _frozen_data(self, event: WebhookEvent) -> object:
        if event.payload is not None:
            return json.loads(event.payload)
        execution = await self._store.executions.execution(event.execution_id or "")
        if execution is None:
            return event.data or {}
        outputs = await self._store.executions.outputs(execution.id)
        urls = {output.id: await self._output_url(output)
                for output in linked_outputs(event, outputs)}
        data = event_data(event, execution, outputs, lambda output: urls[output.id],
                          self._config.prices)
        frozen = await self._store.webhooks.freeze_payload(event.id, json.dumps(data))
        return json.loads(frozen)

    async def _output_url(self, output: OutputRecord) -> str:
        expires = int(time.time()) + self._config.signed_url_ttl
        return await download_url(self._storage, output, base_url=self._config.base_url,
                                  expires=expires)

    # ------------------------------------------------------------------ HTTP

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = outbound_client(ssl.create_default_context(), self._config.timeout)
        return self._client

    async def _send(self, url: str, body: bytes, secret: str | None, event_id: str) -> _Attempt:
        headers = {"Content-Type": "application/json", "User-Agent": "comfy-serverless",
                   **signature_headers(body, secret, event_id, int(time.time()))}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._config.timeout):
                try:
                    checked = await check_destination(url, self._config.policy)
                except UnsafeDestination as exc:
                    return _Attempt(None, None, f"refused before connecting: {exc}")
                request = OutboundRequest("POST", checked, headers, body)
                async with pinned_stream(self._http, request) as response:
                    reply = await read_capped(response, self._config.reply_max_bytes)
        except (OutboundError, TimeoutError) as exc:
            return _Attempt(None, _since(started), f"{type(exc).__name__}: {exc}".strip(": "))
        retry_after = _retry_after(reply) if reply.status_code in (429, 503) else None
        return _Attempt(reply.status_code, _since(started), None, retry_after, reply)


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _retry_after(reply: Reply) -> float | None:
    value = reply.headers.get("Retry-After", "")
    return min(float(value), _MAX_BACKOFF) if value.isdigit() else None
