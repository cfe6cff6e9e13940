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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from comfy_serverless.engine.comfyui.messages import (
    ConnectionLost,
    EngineEvent,
    parse_message,
    parse_preview,
    unwanted_text,
)
from comfy_serverless.errors import EnginePromptRejected, EngineUnavailable

__all__ = ["ComfyUIClient", "Subscription", "WrittenFile"]

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


@dataclass(frozen=True)
class WrittenFile:
    """A file that a prompt wrote in ComfyUI's output or temp folder. Its `identity` (inode
    and modification time, from the hooks) tells it from a later file of the same name:
    ComfyUI numbers a new file after the highest name still in the folder, so once this one
    is moved out, the next prompt writes its name again."""

    folder_type: str
    subfolder: str
    filename: str
    identity: str | None = None


class ComfyUIClient:
    def __init__(self, base_url: str, *, http_timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self._timeout = aiohttp.ClientTimeout(total=http_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._subscriptions: dict[str, Subscription] = {}
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def start(self) -> None:
        """Start the event stream; returns once the WebSocket is connected."""
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_events(), name="comfyui-events")
        await self.wait_connected()

    @property
    def connected(self) -> bool:
        """Whether the event WebSocket is up right now."""
        return self._connected.is_set()

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
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ events

    def subscribe(self, prompt_id: str) -> Subscription:
        subscription = Subscription(prompt_id)
        self._subscriptions[prompt_id] = subscription
        return subscription

    def unsubscribe(self, prompt_id: str) -> None:
        self._subscriptions.pop(prompt_id, None)

    async def _read_events(self) -> None:
        ws_url = f"{self.base_url}/ws?clientId={self.client_id}"
        while True:
            try:
                async with self._http.ws_connect(ws_url, heartbeat=20, max_msg_size=0,
                                                 timeout=aiohttp.ClientWSTimeout(ws_close=5)
                                                 ) as socket:
                    # Must be the first message: previews then carry their prompt id.
                    await socket.send_json({"type": "feature_flags",
                                            "data": {"supports_preview_metadata": True}})
                    self._connected.set()
                    async for frame in socket:
                        if frame.type == aiohttp.WSMsgType.TEXT:
                            if not unwanted_text(frame.data):
                                self._route(json.loads(frame.data))
                        elif frame.type == aiohttp.WSMsgType.BINARY:
                            self._route_preview(frame.data)
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
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

    def _route_preview(self, frame: bytes) -> None:
        preview = parse_preview(frame)
        subscription = self._subscriptions.get(preview.prompt_id) if preview else None
        if preview is not None and subscription is not None:
            subscription.put(preview)

    def _broadcast(self, event: EngineEvent) -> None:
        for subscription in list(self._subscriptions.values()):
            subscription.put(event)

    # ------------------------------------------------------------------ commands

    async def system_stats(self) -> dict[str, Any]:
        return await self._get_json("/system_stats")

    async def object_info(self) -> dict[str, Any]:
        return await self._get_json("/object_info")

    async def model_folders(self) -> list[dict[str, Any]]:
        """ComfyUI's model folders, each {name, folders: [paths on its machine]}."""
        return await self._get_list("/experiment/models")

    async def model_files(self, folder: str) -> list[dict[str, Any]]:
        """One model folder's files, each {name, pathIndex, size, modified}."""
        return await self._get_list(f"/experiment/models/{folder}")

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        body = await self._get_json(f"/history/{prompt_id}")
        entry = body.get(prompt_id)
        return entry if isinstance(entry, dict) else None

    async def queue(self) -> dict[str, Any]:
        return await self._get_json("/queue")

    async def submit(self, prompt: dict[str, Any], prompt_id: str, *,
                     extra_data: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id,
                                "prompt_id": prompt_id}
        if extra_data:
            body["extra_data"] = extra_data
        status, payload = await self._request("POST", "/prompt", body)
        if status == 400:
            raise _rejection(payload)
        _raise_for_status(status, "POST", "/prompt")

    async def interrupt(self, prompt_id: str) -> None:
        status, _ = await self._request("POST", "/interrupt", {"prompt_id": prompt_id})
        _raise_for_status(status, "POST", "/interrupt")

    async def delete_queued(self, prompt_ids: list[str]) -> None:
        status, _ = await self._request("POST", "/queue", {"delete": prompt_ids})
        _raise_for_status(status, "POST", "/queue")

    async def delete_history(self, prompt_ids: list[str]) -> None:
        """Drop prompts from ComfyUI's history (it keeps 10,000 by default, outputs and all)."""
        status, _ = await self._request("POST", "/history", {"delete": prompt_ids})
        _raise_for_status(status, "POST", "/history")

    async def has_hooks(self) -> bool:
        """Whether this ComfyUI runs comfy-serverless's hooks (engine/comfyui/extension)."""
        return await self.hooks() is not None

    async def hooks(self) -> dict[str, Any] | None:
        """What comfy-serverless's hooks report (version, ComfyUI's pid and its GPU's
        identity); None when this ComfyUI does not run them."""
        status, payload = await self._request("GET", "/comfy-serverless/hooks")
        return payload if status == 200 and payload.get("version") else None

    async def written_files(self, prompt_id: str) -> list[WrittenFile]:
        """Every file that appeared in ComfyUI's output and temp folders while the prompt
        ran, with its identity (through the hooks)."""
        path = f"/comfy-serverless/written/{prompt_id}"
        status, body = await self._request("GET", path)
        _raise_for_status(status, "GET", path)
        files = body.get("files")
        return [WrittenFile(str(item.get("type")), str(item.get("subfolder") or ""),
                            item["filename"], _text_or_none(item.get("identity")))
                for item in (files if isinstance(files, list) else [])
                if isinstance(item, dict) and isinstance(item.get("filename"), str)]

    async def delete_file(self, folder_type: str, subfolder: str, filename: str,
                          identity: str | None = None) -> None:
        """Delete one file from ComfyUI's output, temp or input folder (through the hooks);
        with an `identity`, only when the file of that name is still that very file."""
        body = {"type": folder_type, "subfolder": subfolder, "filename": filename}
        if identity is not None:
            body["identity"] = identity
        status, _ = await self._request("POST", "/comfy-serverless/delete", body)
        _raise_for_status(status, "POST", "/comfy-serverless/delete")

    async def upload_image(self, source: Path, filename: str, subfolder: str) -> str:
        """Upload a file to ComfyUI's input folder (streamed from disk, overwriting a file of
        the same name); returns the name a LoadImage input gives it."""
        form = aiohttp.FormData()
        form.add_field("subfolder", subfolder)
        form.add_field("type", "input")
        form.add_field("overwrite", "true")
        try:
            with source.open("rb") as handle:
                form.add_field("image", handle, filename=filename)
                async with self._http.post(self.base_url + "/upload/image",
                                           data=form) as response:
                    _raise_for_status(response.status, "POST", "/upload/image")
                    body = _json_object(await response.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineUnavailable(f"ComfyUI /upload/image failed: {exc}") from exc
        name, folder = str(body.get("name") or filename), str(body.get("subfolder") or "")
        return f"{folder}/{name}" if folder else name

    @contextlib.asynccontextmanager
    async def download(self, filename: str, subfolder: str, folder_type: str
                       ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream one file from /view, chunk by chunk, never whole in memory."""
        params = {"filename": filename, "subfolder": subfolder, "type": folder_type}
        try:
            async with self._http.get(self.base_url + "/view", params=params) as response:
                _raise_for_status(response.status, "GET", "/view")
                yield response.content.iter_chunked(1 << 20)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineUnavailable(f"ComfyUI /view failed: {exc}") from exc

    async def _get_json(self, path: str) -> dict[str, Any]:
        status, payload = await self._request("GET", path)
        _raise_for_status(status, "GET", path)
        return payload

    async def _get_list(self, path: str) -> list[dict[str, Any]]:
        try:
            async with self._http.get(self.base_url + path) as response:
                _raise_for_status(response.status, "GET", path)
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise EngineUnavailable(f"ComfyUI GET {path} failed: {exc}") from exc
        items = payload if isinstance(payload, list) else []
        return [item for item in items if isinstance(item, dict)]

    async def _request(self, method: str, path: str, body: Any = None
                       ) -> tuple[int, dict[str, Any]]:
        """One call: its status and its JSON body ({} when there is none)."""
        try:
            async with self._http.request(method, self.base_url + path, json=body) as response:
                text = await response.text()
                return response.status, _json_object(text)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineUnavailable(f"ComfyUI {method} {path} failed: {exc}") from exc


def _json_object(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text) if text else {}
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _raise_for_status(status: int, method: str, path: str) -> None:
    if status >= 400:
        raise EngineUnavailable(f"ComfyUI answered {status} to {method} {path}")


def _rejection(body: dict[str, Any]) -> EnginePromptRejected:
    error = body.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    return EnginePromptRejected(message or "ComfyUI rejected the prompt",
                                body.get("node_errors") or {})


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
