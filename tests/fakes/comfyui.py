"""A protocol-faithful fake ComfyUI for fault injection (never a stand-in for end-to-end tests).

It speaks the HTTP routes and WebSocket messages a worker uses, in ComfyUI 0.3.75's order:
`execution_start`, `execution_cached`, `executing {node}` (with `progress` for samplers),
`executed` for output nodes, `execution_success`, `executing {node: null}`, and writes the
prompt's history and output files. Knobs make it misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientError, WSMsgType, web
from PIL import Image


@dataclass
class Faults:
    silent: bool = False              # run prompts but send no WebSocket events
    fail_node: str | None = None      # raise an execution_error at this node id
    error_message: str = "boom"
    prompt_status: int = 200          # answer POST /prompt with this status
    steps: int = 3                    # progress events per sampler node
    step_seconds: float = 0.0
    previews: bool = False            # send a preview frame with each sampler step
    view_status: int = 200            # answer GET /view with this status
    object_info_status: int = 200     # answer GET /object_info with this status
    drop_socket_at: str | None = None  # close the client's WebSocket as this node starts


def _catalog() -> dict[str, Any]:
    """ComfyUI 0.3.75's catalog (tests/fixtures), listing the tiny test checkpoint."""
    info: dict[str, Any] = json.loads(
        (Path(__file__).resolve().parents[1] / "fixtures" / "object_info.json").read_text())
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = [
        "tiny-sd15.safetensors"]
    return info


@dataclass
class FakeComfyUI:
    output_dir: Path
    faults: Faults = field(default_factory=Faults)
    history: dict[str, Any] = field(default_factory=dict)
    interrupted: set[str] = field(default_factory=set)
    running: str | None = None
    pending: list[str] = field(default_factory=list)
    on_prompt: Callable[[], None] | None = None  # called as each POST /prompt arrives
    arrivals: dict[str, float] = field(default_factory=dict)  # prompt id → time.monotonic()
    object_info: dict[str, Any] = field(default_factory=_catalog)  # served at /object_info
    uploads: dict[str, bytes] = field(default_factory=dict)  # "subfolder/name" → bytes
    prompts: dict[str, Any] = field(default_factory=dict)  # prompt id → the prompt submitted
    history_reads: int = 0  # GET /history/{id} requests answered
    _sockets: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    _queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = field(
        default_factory=asyncio.Queue)
    _working: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._working.set()

    def hang(self) -> None:
        """Keep accepting prompts, never run them: ComfyUI's prompt worker has stopped."""
        self._working.clear()

    def restart(self) -> None:
        """What a restart of ComfyUI does: a working prompt worker and an empty queue."""
        self._working.set()
        self.pending.clear()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/system_stats", self._system_stats)
        app.router.add_post("/prompt", self._prompt)
        app.router.add_post("/interrupt", self._interrupt)
        app.router.add_get("/queue", self._get_queue)
        app.router.add_post("/queue", self._post_queue)
        app.router.add_get("/history/{prompt_id}", self._history)
        app.router.add_post("/history", self._post_history)
        app.router.add_get("/view", self._view)
        app.router.add_post("/upload/image", self._upload_image)
        app.router.add_get("/_arrivals", self._arrivals)
        app.router.add_get("/object_info", self._object_info)
        app.on_startup.append(self._start_runner)
        app.on_shutdown.append(self._close_sockets)
        return app

    async def _close_sockets(self, app: web.Application) -> None:
        """A stopping ComfyUI drops its clients at once, instead of waiting on them."""
        for socket in list(self._sockets.values()):
            await socket.close(code=1001)

    async def _start_runner(self, app: web.Application) -> None:
        task = asyncio.create_task(self._run_prompts())
        app.on_cleanup.append(lambda _: _cancel(task))

    # ------------------------------------------------------------------ routes

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets[request.query["clientId"]] = socket
        await socket.send_json({"type": "status", "data": {"status": {}}})
        async for message in socket:
            if message.type == WSMsgType.CLOSE:
                break
        self._sockets.pop(request.query["clientId"], None)
        return socket

    async def _system_stats(self, request: web.Request) -> web.Response:
        device = {"name": "fake", "type": "cpu", "vram_total": 8 << 30, "vram_free": 6 << 30}
        return web.json_response({"system": {"comfyui_version": "fake"}, "devices": [device]})

    async def _prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.arrivals[body["prompt_id"]] = time.monotonic()
        self.prompts[body["prompt_id"]] = body["prompt"]
        if self.on_prompt is not None:
            self.on_prompt()
        if self.faults.prompt_status != 200:
            return web.json_response({"error": "injected"}, status=self.faults.prompt_status)
        self.pending.append(body["prompt_id"])
        await self._queue.put((body["prompt_id"], body["client_id"], body["prompt"]))
        return web.json_response({"prompt_id": body["prompt_id"], "number": 0,
                                  "node_errors": {}})

    async def _interrupt(self, request: web.Request) -> web.Response:
        prompt_id = (await request.json()).get("prompt_id")
        if prompt_id and prompt_id == self.running:
            self.interrupted.add(prompt_id)
        return web.Response()

    async def _get_queue(self, request: web.Request) -> web.Response:
        running = [[0, self.running, {}, {}, []]] if self.running else []
        pending = [[index, prompt_id, {}, {}, []] for index, prompt_id in enumerate(self.pending)]
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def _post_queue(self, request: web.Request) -> web.Response:
        for prompt_id in (await request.json()).get("delete") or []:
            if prompt_id in self.pending:
                self.pending.remove(prompt_id)
        return web.Response()

    async def _object_info(self, request: web.Request) -> web.Response:
        if self.faults.object_info_status != 200:
            return web.json_response({"error": "injected"},
                                     status=self.faults.object_info_status)
        return web.json_response(self.object_info)

    async def _arrivals(self, request: web.Request) -> web.Response:
        """Not ComfyUI's: when each prompt arrived (CLOCK_MONOTONIC, comparable across
        processes on one machine), for benchmarks that run the fake in its own process."""
        return web.json_response(self.arrivals)

    async def _history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        self.history_reads += 1
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def _post_history(self, request: web.Request) -> web.Response:
        """As ComfyUI: `{"delete": [prompt_id, …]}` drops those entries."""
        for prompt_id in (await request.json()).get("delete") or []:
            self.history.pop(prompt_id, None)
        return web.Response()

    async def _upload_image(self, request: web.Request) -> web.Response:
        """As ComfyUI: a multipart `image` file (and optional `subfolder`) into its inputs."""
        form = await request.post()
        image = form["image"]
        assert isinstance(image, web.FileField)
        subfolder = str(form.get("subfolder") or "")
        name = image.filename
        self.uploads[f"{subfolder}/{name}" if subfolder else name] = image.file.read()
        return web.json_response({"name": name, "subfolder": subfolder, "type": "input"})

    async def _view(self, request: web.Request) -> web.StreamResponse:
        path = self.output_dir / request.query["filename"]
        if self.faults.view_status != 200:
            return web.Response(status=self.faults.view_status, text="injected")
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    # ------------------------------------------------------------------ execution

    async def _run_prompts(self) -> None:
        while True:
            prompt_id, client_id, prompt = await self._queue.get()
            await self._working.wait()
            if prompt_id not in self.pending:
                continue  # deleted from the queue
            self.pending.remove(prompt_id)
            self.running = prompt_id
            try:
                await self._execute(prompt_id, client_id, prompt)
            finally:
                self.running = None

    async def _send(self, client_id: str, kind: str, data: dict[str, Any]) -> None:
        socket = self._sockets.get(client_id)
        if socket is None or self.faults.silent:
            return
        try:
            await socket.send_str(json.dumps({"type": kind, "data": data}))
        except (ConnectionError, ClientError):
            self._sockets.pop(client_id, None)  # like ComfyUI: a gone client misses events

    async def _send_preview(self, prompt_id: str, node_id: str) -> None:
        """PREVIEW_IMAGE_WITH_METADATA (4): `[event][metadata length][metadata][image]`, to
        every client, as ComfyUI sends previews to the prompt's client."""
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4), "green").save(buffer, "JPEG")
        metadata = json.dumps({"prompt_id": prompt_id, "node_id": node_id,
                               "image_type": "image/jpeg"}).encode()
        frame = (4).to_bytes(4, "big") + len(metadata).to_bytes(4, "big") + metadata
        for socket in list(self._sockets.values()):
            with contextlib.suppress(ConnectionError, ClientError):
                await socket.send_bytes(frame + buffer.getvalue())

    async def _execute(self, prompt_id: str, client_id: str, prompt: dict[str, Any]) -> None:
        async def send(kind: str, **data: Any) -> None:
            await self._send(client_id, kind, {**data, "prompt_id": prompt_id})

        await send("execution_start")
        await send("execution_cached", nodes=[])
        outputs: dict[str, Any] = {}
        for node_id, node in prompt.items():
            await send("executing", node=node_id)
            if node_id == self.faults.drop_socket_at and client_id in self._sockets:
                await self._sockets.pop(client_id).close(code=1011)  # the client reconnects
            if node_id == self.faults.fail_node:
                await send("execution_error", node_id=node_id, node_type=node["class_type"],
                           exception_type="RuntimeError",
                           exception_message=self.faults.error_message, traceback=[])
                self.history[prompt_id] = {"outputs": {}, "status": {"status_str": "error"}}
                return
            if not await self._run_node(send, prompt_id, node_id, node, outputs):
                await send("execution_interrupted", node_id=node_id)
                return
        await send("execution_success")
        self.history[prompt_id] = {"outputs": outputs, "status": {"status_str": "success"}}
        await send("executing", node=None)

    async def _run_node(self, send: Callable[..., Awaitable[None]], prompt_id: str,
                        node_id: str, node: dict[str, Any], outputs: dict[str, Any]) -> bool:
        if "Sampler" in node["class_type"]:
            for step in range(1, self.faults.steps + 1):
                if prompt_id in self.interrupted:
                    return False
                await asyncio.sleep(self.faults.step_seconds)
                await send("progress", value=step, max=self.faults.steps, node=node_id)
                if self.faults.previews:
                    await self._send_preview(prompt_id, node_id)
        if node["class_type"] == "SaveImage":
            filename = f"{prompt_id}.png"
            buffer = io.BytesIO()
            Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
            (self.output_dir / filename).write_bytes(buffer.getvalue())
            image = {"filename": filename, "subfolder": "", "type": "output"}
            outputs[node_id] = {"images": [image]}
            await send("executed", node=node_id, output=outputs[node_id])
        return prompt_id not in self.interrupted


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def running_fake(output_dir: Path, port: int) -> AsyncIterator[FakeComfyUI]:
    fake = FakeComfyUI(output_dir)
    runner = web.AppRunner(fake.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield fake
    finally:
        await runner.cleanup()


def main() -> None:
    """Serve a fake ComfyUI in its own process: python -m tests.fakes.comfyui PORT FOLDER."""
    import sys

    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    web.run_app(FakeComfyUI(folder).app(), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
