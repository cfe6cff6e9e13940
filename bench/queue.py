"""Queue throughput and dispatch latency, on PostgreSQL and on SQLite.

    python -m bench.queue [--jobs 3000] [--workers 100] [--dispatches 200]

1. Throughput: `--jobs` executions are queued, then `--workers` simulated workers (asyncio
   tasks in one process, sharing the store's connection pool) claim and complete them as fast
   as they can: each job is a claim (`… FOR UPDATE SKIP LOCKED` / `BEGIN IMMEDIATE`) and a
   guarded completion with its log entry. Prints claims plus completions per second.
2. Dispatch latency: one real, idle worker (`Worker` with its producer loop, attached to a
   protocol-faithful fake ComfyUI in its own process, as ComfyUI is) and a submitter on
   another store connection. Each sample is the time from the submit's start to ComfyUI
   receiving `POST /prompt`, both read from CLOCK_MONOTONIC.
   The worker is woken by NOTIFY on PostgreSQL and by the in-process signal on SQLite.

Targets: ≥ 1,000 jobs/s on PostgreSQL; dispatch p50 ≤ 5 ms, p99 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.engine.comfyui.supervisor import AttachedEngine
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import NewExecution, ProgressSnapshot
from comfy_serverless.store.store import Store
from comfy_serverless.testing import free_port, scratch_postgres_schema
from comfy_serverless.worker.worker import Worker
from comfy_serverless.worker.worker_config import WorkerConfig
from workloads.workflows import inverted_image

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
GRAPH = inverted_image(1)
DONE = ProgressSnapshot(1.0, None, None, None, None, 3)


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    async with scratch_postgres_schema(POSTGRES, "bench") as url:
        yield url


def _execution(key_id: str) -> NewExecution:
    return NewExecution(
        id=new_execution_id(), api_key_id=key_id, priority=5, workflow=GRAPH,
        options=ExecutionOptions(), signature="bench", webhook_url=None, client_id=None,
        submitted_at=time.time(), max_attempts=1, total_nodes=3)


async def _simulated_worker(store: Store, worker_id: str, counter: list[int]) -> None:
    while (execution := await store.claims.claim_next(worker_id, 30)) is not None:
        assert await store.claims.complete(execution.lease, [], DONE, 0.0)
        counter[0] += 1


async def throughput(url: str, jobs: int, workers: int) -> float:
    store = await Store.open(url)
    await store.migrate()
    key = issue_key("secret", "basic").record
    await store.access.create_api_key(key)
    for _ in range(jobs):
        await store.executions.create_execution(_execution(key.id))
    # As every service's housekeeping pass does once a minute (autovacuum would too, later).
    await store.claims.refresh_planner_statistics()
    counter = [0]
    started = time.perf_counter()
    await asyncio.gather(*(_simulated_worker(store, f"sim-{i}", counter)
                           for i in range(workers)))
    elapsed = time.perf_counter() - started
    await store.close()
    assert counter[0] == jobs
    return jobs / elapsed


@asynccontextmanager
async def fake_comfyui_process(folder: Path) -> AsyncIterator[str]:
    """The fake ComfyUI in its own process, as a real ComfyUI would be."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.comfyui", str(port), str(folder / "engine"))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url + "/system_stats")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield url
    finally:
        process.terminate()
        await process.wait()


async def dispatch_latency(url: str, samples: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        async with fake_comfyui_process(Path(folder)) as engine_url:
            worker_store = await Store.open(url)
            await worker_store.migrate()
            submit_store = worker_store if url.startswith("sqlite") else await Store.open(url)
            key = issue_key("secret", "basic").record
            await submit_store.access.create_api_key(key)
            config = WorkerConfig(worker_id="bench", spool_dir=Path(folder) / "spool",
                                  poll_interval=5.0)
            worker = Worker(config, worker_store, AttachedEngine(engine_url),
                            LocalStorage(Path(folder) / "storage", UrlSigner("s")))
            await worker.start()
            latencies = await _measure_dispatch(submit_store, worker, engine_url, key.id,
                                                samples)
            await worker.stop()
            if submit_store is not worker_store:
                await submit_store.close()
            await worker_store.close()
    return latencies


async def _measure_dispatch(store: Store, worker: Worker, engine_url: str, key_id: str,
                            samples: int) -> list[float]:
    submitted_at: dict[str, float] = {}
    for _ in range(samples):
        execution = _execution(key_id)
        with worker.wakeups.watch_finish(execution.id) as finished:
            submitted_at[execution.id] = time.monotonic()
            await store.executions.create_execution(execution)
            if store.dialect == "sqlite":
                worker.wakeups.work_available()
            await asyncio.wait_for(finished.wait(), 10)
    async with httpx.AsyncClient() as http:
        arrivals = (await http.get(engine_url + "/_arrivals")).json()
    latencies = []
    for execution_id, started in submitted_at.items():
        record = await store.executions.execution(execution_id)
        assert record is not None
        assert record.engine_prompt_id is not None
        latencies.append(arrivals[record.engine_prompt_id] - started)
    return latencies


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--dispatches", type=int, default=200)
    args = parser.parse_args()
    for kind in ("postgres", "sqlite"):
        async with database(kind) as url:
            rate = await throughput(url, args.jobs, args.workers)
        async with database(kind) as url:
            latencies = await dispatch_latency(url, args.dispatches)
        print(f"{kind:<8} throughput {rate:8.0f} jobs/s claimed and completed "
              f"({args.workers} workers, {args.jobs} jobs)   dispatch p50 "
              f"{statistics.median(latencies) * 1000:5.2f} ms  p99 "
              f"{_percentile(latencies, 0.99) * 1000:6.2f} ms ({args.dispatches} jobs)")


if __name__ == "__main__":
    asyncio.run(main())
