"""End-to-end time of a trivial workflow through the service vs straight to the same ComfyUI.

    python -m bench.overhead [--jobs 40] [--poll-ms 2] [--no-download]
    python -m bench.overhead --clients 4 [--duration 30] [--rounds 2]

One ComfyUI serves both paths: the service's embedded worker supervises it, and the raw
client talks to it directly (WebSocket + POST /prompt + GET /history, the floor any client
pays). Jobs alternate raw / service so that drift in the machine affects both alike. Each job
is EmptyImage → ImageInvert → SaveImage with a fresh colour, so ComfyUI's cache never answers.

Service path: POST /v1/workflows/execute, then one long-poll GET …/results?wait=30 (or, with
--poll-ms, poll GET …/status until `completed`, then GET …/results). `--paths` adds others,
each interleaved with the raw jobs: `prefer-wait` (one POST with `Prefer: wait=30`, answered
200 with the results) and `sse` (POST, follow GET …/events to its `end`, GET …/results).
Raw path: POST /prompt, wait for `executing {node: null}`, GET /history/{id}.
Both paths then download the output (raw: GET /view; service: the signed URL of the
results), unless --no-download. The service process's CPU time (its threads' schedstat, the
embedded worker included, ComfyUI excluded) is summed around each service job.

`--clients N`: N concurrent clients on each path for --duration seconds, raw and service
phases alternating --rounds times; prints each path's throughput, the ratio to raw, and
the service process's CPU time per job over its phases.
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

    def __init__(self, base_url: str, download: bool = True) -> None:
        self.base_url = base_url
        self.download = download
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
        if self.download:
            await self._view(history[prompt_id]["outputs"])
        return time.perf_counter() - started

    async def _view(self, outputs: dict[str, Any]) -> None:
        image = next(iter(outputs.values()))["images"][0]
        view = await self.http.get("/view", params={
            "filename": image["filename"], "subfolder": image["subfolder"],
            "type": image["type"]})
        view.raise_for_status()


def process_cpu_seconds(pid: int) -> float:
    """CPU time of one process's threads (not its children, so not ComfyUI), summed from
    /proc/PID/task/*/schedstat in nanoseconds: utime and stime count 10 ms ticks, too
    coarse for one job. A thread that exited takes its time with it; the service keeps
    its threads (the event loop's, a small pool)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return total / 1e9


class ServiceClient:
    def __init__(self, base_url: str, key: str, poll_interval: float | None,
                 download: bool = True) -> None:
        self.http = httpx.AsyncClient(base_url=base_url,
                                      headers={"Authorization": f"Bearer {key}"})
        self.poll_interval = poll_interval
        self.download = download

    async def _fetch_output(self, results: httpx.Response) -> None:
        """The signed download of the first output, as a client fetching its image does."""
        if self.download:
            url = results.json()["results"]["outputs"][0]["storage"]["url"]
            (await self.http.get(url)).raise_for_status()

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
            await self._fetch_output(results)
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
        await self._fetch_output(results)
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.http.aclose()


def _summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return (f"{name:<11} median {statistics.median(samples) * 1000:7.2f} ms   "
            f"mean {statistics.mean(samples) * 1000:7.2f} ms   p90 {p90 * 1000:7.2f} ms")


async def _measure(service: LocalService, key: str, args: argparse.Namespace
                   ) -> tuple[dict[str, list[float]], list[float]]:
    """Each path's times, and the service process's CPU seconds around each service job."""
    poll = None if args.poll_ms is None else args.poll_ms / 1000
    client = ServiceClient(service.base_url, key, poll, not args.no_download)
    runs: dict[str, Callable[[dict[str, Any]], Awaitable[float]]] = {
        "service": client.run, "prefer-wait": client.run_preferring_wait,
        "sse": client.run_streaming}
    times: dict[str, list[float]] = {name: [] for name in ["raw", "service", *args.paths]}
    cpu: list[float] = []
    async with RawComfyUI(service.comfyui_url, not args.no_download) as raw:
        for index in range(args.warmup + args.jobs):
            for name in times:
                run = raw.run if name == "raw" else runs[name]
                cpu_before = process_cpu_seconds(service.process.pid)
                elapsed = await run(inverted_image(next(_colors)))
                if index >= args.warmup:
                    times[name].append(elapsed)
                    if name == "service":
                        cpu.append(process_cpu_seconds(service.process.pid) - cpu_before)
    await client.close()
    return times, cpu


async def _for_a_while(run: Callable[[dict[str, Any]], Awaitable[float]], until: float
                       ) -> int:
    """One client's jobs, back to back, until the monotonic deadline: how many finished."""
    done = 0
    while time.monotonic() < until:
        await run(inverted_image(next(_colors)))
        done += 1
    return done


async def _raw_phase(service: LocalService, args: argparse.Namespace) -> tuple[int, float]:
    """Jobs done by the raw clients, and this (client) process's CPU seconds meanwhile."""
    raws = [RawComfyUI(service.comfyui_url, not args.no_download) for _ in range(args.clients)]
    for raw in raws:
        await raw.__aenter__()
    client_cpu = time.process_time()
    until = time.monotonic() + args.duration
    done = await asyncio.gather(*(_for_a_while(raw.run, until) for raw in raws))
    client_cpu = time.process_time() - client_cpu
    for raw in raws:
        await raw.__aexit__()
    return sum(done), client_cpu


async def _service_phase(service: LocalService, key: str, args: argparse.Namespace
                         ) -> tuple[int, float, float]:
    """Jobs done by the clients, the service process's and this process's CPU seconds."""
    clients = [ServiceClient(service.base_url, key, None, not args.no_download)
               for _ in range(args.clients)]
    cpu_before, client_cpu = process_cpu_seconds(service.process.pid), time.process_time()
    until = time.monotonic() + args.duration
    done = await asyncio.gather(*(_for_a_while(client.run, until) for client in clients))
    cpu = process_cpu_seconds(service.process.pid) - cpu_before
    client_cpu = time.process_time() - client_cpu
    for client in clients:
        await client.close()
    return sum(done), cpu, client_cpu


async def _measure_concurrent(service: LocalService, key: str, args: argparse.Namespace
                              ) -> None:
    client = ServiceClient(service.base_url, key, None, not args.no_download)
    for _ in range(args.warmup):  # both paths warm: ComfyUI's first jobs are slow
        await client.run(inverted_image(next(_colors)))
    await client.close()
    jobs = {"raw": 0, "service": 0}
    cpu = {"raw client": 0.0, "service client": 0.0, "service": 0.0}
    for _ in range(args.rounds):
        raw_jobs, raw_client_cpu = await _raw_phase(service, args)
        service_jobs, service_cpu, client_cpu = await _service_phase(service, key, args)
        jobs["raw"] += raw_jobs
        jobs["service"] += service_jobs
        cpu["raw client"] += raw_client_cpu
        cpu["service client"] += client_cpu
        cpu["service"] += service_cpu
    _report_concurrent(args, jobs, cpu)


def _report_concurrent(args: argparse.Namespace, jobs: dict[str, int],
                       cpu: dict[str, float]) -> None:
    seconds = args.duration * args.rounds
    raw, service = jobs["raw"], jobs["service"]
    print(f"{args.clients} clients, {args.rounds} x {args.duration:g} s per path, alternating")
    print(f"raw         {raw / seconds:7.1f} jobs/s ({raw} jobs)   "
          f"client CPU {cpu['raw client'] / raw * 1000:.2f} ms per job")
    print(f"service     {service / seconds:7.1f} jobs/s ({service} jobs)   "
          f"client CPU {cpu['service client'] / service * 1000:.2f} ms per job")
    print(f"service     ratio {service / raw:.3f}x raw   "
          f"service CPU {cpu['service'] / service * 1000:.2f} ms per job")


def _report(args: argparse.Namespace, times: dict[str, list[float]], cpu: list[float]) -> None:
    raw_median = statistics.median(times["raw"])
    print(f"trivial workflow, {args.jobs} jobs each, interleaved, after {args.warmup} warm-up"
          f"{'' if args.no_download else ', output downloaded'}")
    for name, samples in times.items():
        print(_summary(name, samples))
    for name, samples in times.items():
        if name != "raw":
            median = statistics.median(samples)
            print(f"{name:<11} ratio {median / raw_median:.3f}x   "
                  f"overhead {(median - raw_median) * 1000:+.2f} ms per job (medians)")
    paired = [s - r for s, r in zip(times["service"], times["raw"], strict=True)]
    print(f"service     paired delta median {statistics.median(paired) * 1000:+.2f} ms   "
          f"service CPU {sum(cpu) / len(cpu) * 1000:.2f} ms per job (mean)")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--poll-ms", type=float, default=None,
                        help="poll GET …/status every N ms instead of one long-poll "
                             "GET …/results?wait=30")
    parser.add_argument("--paths", nargs="*", default=[], choices=["prefer-wait", "sse"],
                        help="other service paths to measure beside the long-poll")
    parser.add_argument("--no-download", action="store_true",
                        help="stop at the history / results, without fetching the output")
    parser.add_argument("--clients", type=int, default=None,
                        help="N concurrent clients per path for --duration s: throughput")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    layout = install_engine(EngineLayout(Settings().engine_dir))
    with tempfile.TemporaryDirectory() as data_dir, \
            LocalService.start(Path(data_dir), layout.root) as service:
        key = service.new_unthrottled_key()
        if args.clients:
            asyncio.run(_measure_concurrent(service, key, args))
            return
        times, cpu = asyncio.run(_measure(service, key, args))
    _report(args, times, cpu)


if __name__ == "__main__":
    main()
