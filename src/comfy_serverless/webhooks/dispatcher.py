"""The dispatcher: delivers the outbox's events, signs each attempt, logs every one.

At-least-once: an event is delivered until a receiver answers 2xx or its attempts
(`max_retries`) are spent; a duplicate (a dispatcher that died after sending, before
recording) carries the same `event_id`. Per execution, events go out in the order they were
written: an event waits while an earlier one of its execution is still undelivered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from dataclasses import dataclass, field

import aiohttp

from comfy_serverless.background import BackgroundService
from comfy_serverless.executions.costs import Prices
from comfy_serverless.executions.views import absolute_url
from comfy_serverless.logs import execution_context
from comfy_serverless.storage.base import OutputStorage, location_of
from comfy_serverless.store.records import OutputRecord, WebhookEvent
from comfy_serverless.store.store import Store
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
    batch: int = 20
    lease_seconds: float = 60.0
    prices: Prices = field(default_factory=Prices)
    owner: str = f"dispatcher-{socket.gethostname()}"


@dataclass(frozen=True)
class _Attempt:
    status_code: int | None
    latency_ms: float | None
    error: str | None
    retry_after: float | None = None


class WebhookDispatcher(BackgroundService):
    name = "webhook-dispatcher"

    def __init__(self, store: Store, storage: OutputStorage, config: DispatcherConfig) -> None:
        super().__init__(config.poll_interval)
        self._store = store
        self._storage = storage
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self) -> int:
        """Claim the events that are due and attempt each once; how many were attempted."""
        events = await self._store.webhooks.claim(self._config.owner, self._config.lease_seconds,
                                                  self._config.batch)
        await asyncio.gather(*(self._deliver(event) for event in events))
        return len(events)

    async def _deliver(self, event: WebhookEvent) -> None:
        with execution_context(event.execution_id):
            await self._attempt(event)

    async def _attempt(self, event: WebhookEvent) -> None:
        attempt = event.attempts + 1
        data = await self._frozen_data(event)
        body = json.dumps(event_body(event, data, attempt), separators=(",", ":")).encode()
        secret = await self._store.webhooks.secret_for(event.id)
        result = await self._send(event.url, body, secret, event.id)
        outcome, next_at = self._next_step(event, attempt, result)
        await self._store.webhooks.record_attempt(
            event, self._config.owner, attempt=attempt, status_code=result.status_code,
            latency_ms=result.latency_ms, error=result.error, outcome=outcome,
            next_attempt_at=next_at)
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
        execution = await self._store.execution(event.execution_id or "")
        if execution is None:
            return event.data or {}
        outputs = await self._store.outputs(execution.id)
        urls = {output.id: await self._output_url(output)
                for output in linked_outputs(event, outputs)}
        data = event_data(event, execution, outputs, lambda output: urls[output.id],
                          self._config.prices)
        frozen = await self._store.webhooks.freeze_payload(event.id, json.dumps(data))
        return json.loads(frozen)

    async def _output_url(self, output: OutputRecord) -> str:
        location = location_of(output)
        expires = int(time.time()) + self._config.signed_url_ttl
        path = await self._storage.download_path(location, expires)
        return absolute_url(self._config.base_url, path)

    # ------------------------------------------------------------------ HTTP

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout))
        return self._session

    async def _send(self, url: str, body: bytes, secret: str | None, event_id: str) -> _Attempt:
        try:
            await check_destination(url, self._config.policy)
        except UnsafeDestination as exc:
            return _Attempt(None, None, f"refused before connecting: {exc}")
        headers = {"Content-Type": "application/json", "User-Agent": "comfy-serverless",
                   **signature_headers(body, secret, event_id, int(time.time()))}
        started = time.perf_counter()
        try:
            async with self._http.post(url, data=body, headers=headers,
                                       allow_redirects=False) as response:
                await response.read()
                latency = round((time.perf_counter() - started) * 1000, 2)
                return _Attempt(response.status, latency, None,
                                _retry_after(response) if response.status in (429, 503)
                                else None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            latency = round((time.perf_counter() - started) * 1000, 2)
            return _Attempt(None, latency, f"{type(exc).__name__}: {exc}".strip(": "))


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("Retry-After", "")
    return min(float(value), _MAX_BACKOFF) if value.isdigit() else None
