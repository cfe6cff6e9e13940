"""A client for one ComfyUI: HTTP for commands, one WebSocket for events.

The WebSocket is opened under our own `client_id` before any prompt is submitted, and
events are routed to per-prompt subscriptions, so a prompt can never finish before we
listen to it. If the socket drops, every subscription receives ConnectionLost and the
stream reconnects; executors then reconcile through /history and /queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import websockets

from comfy_serverless.engine.comfyui.messages import ConnectionLost, EngineEvent, parse_message
from comfy_serverless.errors import EnginePromptRejected, EngineUnavailable

__all__ = ["ComfyUIClient", "Subscription"]

log = logging.getLogger(__name__)


class Subscription:
    """The events of one prompt, in order."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self._queue: asyncio.Queue[EngineEvent] = asyncio.Queue()

    def put(self, event: EngineEvent) -> None:
        self._queue.put_nowait(event)

    async def next(self, timeout: float | None = None) -> EngineEvent | None:
        """The next event, or None when `timeout` passes first."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None


class ComfyUIClient:
    def __init__(self, base_url: str, *, http_timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=http_timeout)
        self._subscriptions: dict[str, Subscription] = {}
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the event stream; returns once the WebSocket is connected."""
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_events(), name="comfyui-events")
        await self.wait_connected()

    async def wait_connected(self, timeout: float = 30.0) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError as exc:
            raise EngineUnavailable(f"no WebSocket to {self.base_url}") from exc

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._http.aclose()

    # ------------------------------------------------------------------ events

    def subscribe(self, prompt_id: str) -> Subscription:
        subscription = Subscription(prompt_id)
        self._subscriptions[prompt_id] = subscription
        return subscription

    def unsubscribe(self, prompt_id: str) -> None:
        self._subscriptions.pop(prompt_id, None)

    async def _read_events(self) -> None:
        ws_url = self.base_url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        while True:
            try:
                async with websockets.connect(ws_url, max_size=None, ping_interval=20) as socket:
                    self._connected.set()
                    async for frame in socket:
                        if isinstance(frame, str):
                            self._route(json.loads(frame))
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                log.debug("ComfyUI WebSocket unavailable: %s", exc)
            if self._connected.is_set():
                self._connected.clear()
                self._broadcast(ConnectionLost("ComfyUI WebSocket closed"))
            await asyncio.sleep(0.2)

    def _route(self, message: dict[str, Any]) -> None:
        event = parse_message(message)
        if event is None or isinstance(event, ConnectionLost):
            return
        subscription = self._subscriptions.get(event.prompt_id)
        if subscription is not None:
            subscription.put(event)

    def _broadcast(self, event: EngineEvent) -> None:
        for subscription in list(self._subscriptions.values()):
            subscription.put(event)

    # ------------------------------------------------------------------ commands

    async def system_stats(self) -> dict[str, Any]:
        return await self._get_json("/system_stats")

    async def object_info(self) -> dict[str, Any]:
        return await self._get_json("/object_info")

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        body = await self._get_json(f"/history/{prompt_id}")
        entry = body.get(prompt_id)
        return entry if isinstance(entry, dict) else None

    async def queue(self) -> dict[str, Any]:
        return await self._get_json("/queue")

    async def submit(self, prompt: dict[str, Any], prompt_id: str) -> None:
        body = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        response = await self._request("POST", "/prompt", json=body)
        if response.status_code == 400:
            raise _rejection(response)
        _raise_for_status(response)

    async def interrupt(self, prompt_id: str) -> None:
        _raise_for_status(
            await self._request("POST", "/interrupt", json={"prompt_id": prompt_id})
        )

    async def delete_queued(self, prompt_ids: list[str]) -> None:
        _raise_for_status(await self._request("POST", "/queue", json={"delete": prompt_ids}))

    @contextlib.asynccontextmanager
    async def download(self, filename: str, subfolder: str, folder_type: str
                       ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream one file from /view, chunk by chunk, never whole in memory."""
        params = {"filename": filename, "subfolder": subfolder, "type": folder_type}
        try:
            async with self._http.stream("GET", "/view", params=params) as response:
                _raise_for_status(response)
                yield response.aiter_bytes(1 << 20)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"ComfyUI /view failed: {exc}") from exc

    async def _get_json(self, path: str) -> dict[str, Any]:
        response = await self._request("GET", path)
        _raise_for_status(response)
        body = response.json()
        return body if isinstance(body, dict) else {}

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"ComfyUI {method} {path} failed: {exc}") from exc


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise EngineUnavailable(
            f"ComfyUI answered {response.status_code} to {response.request.method} "
            f"{response.request.url.path}"
        )


def _rejection(response: httpx.Response) -> EnginePromptRejected:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    return EnginePromptRejected(message or "ComfyUI rejected the prompt",
                                body.get("node_errors") or {})
