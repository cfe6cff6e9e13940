"""End-to-end time of a trivial workflow through the service vs straight to the same ComfyUI.

    python -m bench.overhead [--jobs 40] [--poll-ms 2]

One ComfyUI serves both paths: the service's embedded worker supervises it, and the raw
client talks to it directly (WebSocket + POST /prompt + GET /history, the floor any client
pays). Jobs alternate raw / service so that drift in the machine affects both alike. Each job
is EmptyImage → ImageInvert → SaveImage with a fresh colour, so ComfyUI's cache never answers.

Service path: POST /v1/workflows/execute, then one long-poll GET …/results?wait=30 (or, with
--poll-ms, poll GET …/status until `completed`, then GET …/results). `--paths` adds others,
each interleaved with the raw jobs: `prefer-wait` (one POST with `Prefer: wait=30`, answered
200 with the results) and `sse` (POST, follow GET …/events to its `end`, GET …/results).
Raw path: POST /prompt, wait for `executing {node: null}`, GET /history/{id}.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import websockets

from comfy_serverless.engine.comfyui.installer import EngineLayout, install_engine
from comfy_serverless.settings import Settings
from comfy_serverless.testing import LocalService
from workloads.workflows import inverted_image

_colors = itertools.count(1)


class RawComfyUI:
    """The reference client: one WebSocket, then POST /prompt and GET /history per job."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client_id = uuid.uuid4().hex
        self.http = httpx.AsyncClient(base_url=base_url)
        self.socket: Any = None

    async def __aenter__(self) -> RawComfyUI:
        ws_url = self.base_url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        self.socket = await websockets.connect(ws_url, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.socket.close()
        await self.http.aclose()

    async def run(self, workflow: dict[str, Any]) -> float:
        prompt_id = str(uuid.uuid4())
        started = time.perf_counter()
        body = {"prompt": workflow, "client_id": self.client_id, "prompt_id": prompt_id}
        (await self.http.post("/prompt", json=body)).raise_for_status()
        while True:
            frame = await self.socket.recv()
            if isinstance(frame, bytes):
                continue
            message = json.loads(frame)
            data = message.get("data") or {}
            if (message.get("type") == "executing" and data.get("node") is None
                    and data.get("prompt_id") == prompt_id):
                break
        history = (await self.http.get(f"/history/{prompt_id}")).json()
        assert prompt_id in history
        return time.perf_counter() - started


class ServiceClient:
    def __init__(self, base_url: str, key: str, poll_interval: float | None) -> None:
        self.http = httpx.AsyncClient(base_url=base_url,
                                      headers={"Authorization": f"Bearer {key}"})
        self.poll_interval = poll_interval

    async def run_preferring_wait(self, workflow: dict[str, Any]) -> float:
        started = time.perf_counter()
        done = await self.http.post("/v1/workflows/execute", json={"workflow": workflow},
                                    headers={"Prefer": "wait=30"}, timeout=60)
        assert done.status_code == 200, done.text
        return time.perf_counter() - started

    async def run_streaming(self, workflow: dict[str, Any]) -> float:
        started = time.perf_counter()
        accepted = await self.http.post("/v1/workflows/execute", json={"workflow": workflow})
        execution_id = accepted.json()["execution_id"]
        async with self.http.stream("GET", f"/v1/workflows/{execution_id}/events",
                                    timeout=60) as stream:
            async for line in stream.aiter_lines():
                if line == "event: end":
                    break
        results = await self.http.get(f"/v1/workflows/{execution_id}/results")
        assert results.status_code == 200, results.text
        return time.perf_counter() - started

    async def run(self, workflow: dict[str, Any]) -> float:
        started = time.perf_counter()
        accepted = await self.http.post("/v1/workflows/execute", json={"workflow": workflow})
        execution_id = accepted.json()["execution_id"]
        if self.poll_interval is None:
            results = await self.http.get(f"/v1/workflows/{execution_id}/results",
                                          params={"wait": 30})
            assert results.status_code == 200, results.text
            return time.perf_counter() - started
        while True:
            status = (await self.http.get(f"/v1/workflows/{execution_id}/status")).json()
            if status["status"] == "completed":
                break
            if status["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"benchmark job ended {status['status']}: {status}")
            await asyncio.sleep(self.poll_interval)
        results = await self.http.get(f"/v1/workflows/{execution_id}/results")
        assert results.status_code == 200
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.http.aclose()


def _summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return (f"{name:<11} median {statistics.median(samples) * 1000:7.2f} ms   "
            f"mean {statistics.mean(samples) * 1000:7.2f} ms   p90 {p90 * 1000:7.2f} ms")


async def _measure(service: LocalService, key: str, jobs: int, warmup: int,
                   poll_interval: float | None, paths: list[str]) -> dict[str, list[float]]:
    client = ServiceClient(service.base_url, key, poll_interval)
    runs: dict[str, Callable[[dict[str, Any]], Awaitable[float]]] = {
        "service": client.run, "prefer-wait": client.run_preferring_wait,
        "sse": client.run_streaming}
    times: dict[str, list[float]] = {name: [] for name in ["raw", "service", *paths]}
    async with RawComfyUI(service.comfyui_url) as raw:
        for index in range(warmup + jobs):
            for name in times:
                run = raw.run if name == "raw" else runs[name]
                elapsed = await run(inverted_image(next(_colors)))
                if index >= warmup:
                    times[name].append(elapsed)
    await client.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--poll-ms", type=float, default=None,
                        help="poll GET …/status every N ms instead of one long-poll "
                             "GET …/results?wait=30")
    parser.add_argument("--paths", nargs="*", default=[], choices=["prefer-wait", "sse"],
                        help="other service paths to measure beside the long-poll")
    args = parser.parse_args()

    layout = install_engine(EngineLayout(Settings().engine_dir))
    with tempfile.TemporaryDirectory() as data_dir, \
            LocalService.start(Path(data_dir), layout.root) as service:
        key = service.new_unthrottled_key()
        times = asyncio.run(
            _measure(service, key, args.jobs, args.warmup,
                     None if args.poll_ms is None else args.poll_ms / 1000, args.paths))

    raw_median = statistics.median(times["raw"])
    print(f"trivial workflow, {args.jobs} jobs each, interleaved, after {args.warmup} warm-up")
    for name, samples in times.items():
        print(_summary(name, samples))
    for name, samples in times.items():
        if name != "raw":
            median = statistics.median(samples)
            print(f"{name:<11} ratio {median / raw_median:.3f}x   "
                  f"overhead {(median - raw_median) * 1000:+.2f} ms per job (medians)")

if __name__ == "__main__":
    main()
