"""Submit and status-read throughput of one API process over HTTP, on PostgreSQL.

    python -m bench.api [--submits 2000] [--reads 4000] [--concurrency 32]

Starts `comfy-serverless serve` with no embedded worker on a scratch PostgreSQL schema (and
Redis for the rate limits when --redis is given), then sends accepted submits of a small
valid workflow (`POST /v1/workflows/execute`, every one of them authenticated, rate-limited,
validated and admitted in its own transaction) and then status reads, from `--concurrency`
client connections. The client (aiohttp: httpx's client alone costs ~3 ms of CPU per
request here, more than the server) runs in this process and shares the 2 cores with the
server.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from comfy_serverless.testing import LocalService, scratch_postgres_schema

WORKFLOW = {"workflow": {
    "1": {"class_type": "EmptyImage",
          "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "b", "images": ["1", 0]}},
}}


async def _rate(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    queue = iter(range(count))

    async def client() -> None:
        for index in queue:
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def _measure(service: LocalService, args: argparse.Namespace) -> None:
    key = service.new_unthrottled_key()
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(base_url=service.base_url, connector=connector,
                                     headers={"Authorization": f"Bearer {key}"}) as api:
        ids: list[str] = []

        async def submit(_: int) -> None:
            async with api.post("/v1/workflows/execute", json=WORKFLOW) as response:
                assert response.status == 202, await response.text()
                ids.append((await response.json())["execution_id"])

        async def read(index: int) -> None:
            async with api.get(f"/v1/workflows/{ids[index % len(ids)]}/status") as response:
                assert response.status == 200, await response.text()
                await response.read()

        submits = await _rate(args.submits, args.concurrency, submit)
        reads = await _rate(args.reads, args.concurrency, read)
    limiter = "Redis" if args.redis else "memory"
    print(f"submits accepted {submits:7.0f} /s   ({args.submits}, PostgreSQL, {limiter} limits)")
    print(f"status reads     {reads:7.0f} /s   ({args.reads})")


async def _run(args: argparse.Namespace) -> None:
    async with scratch_postgres_schema(args.postgres, "bench") as database_url:
        env = {"DATABASE_URL": database_url, "COMFY_SERVERLESS_EMBEDDED_WORKER": "false",
               "COMFY_SERVERLESS_WEBHOOK_DISPATCHER": "false"}
        if args.redis:
            env["REDIS_URL"] = args.redis
        with tempfile.TemporaryDirectory() as folder, \
                LocalService.start(Path(folder) / "data", Path(folder) / "no-engine",
                                   extra_env=env) as service:
            await _measure(service, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default=None, help="e.g. redis://127.0.0.1:6379/0")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
