"""Per-request cost of access control: authenticating the key and spending its rate limit.

    python -m bench.access [--requests 3000] [--postgres URL] [--redis URL]

For each store (SQLite file, PostgreSQL) and each rate limiter (in memory, Redis) it times,
one request after another as a request handler does them: authentication and
`AccessGate.throttle` (one GCRA step: a dict update, or one Lua script in Redis). It prints
the median and p99 in µs.

Authentication is timed twice: uncached (`authenticate`: one indexed read by lookup prefix,
one constant-time hash comparison; the path before the key cache) and cached (what an API
process does: `KeyAuthenticator`, its cache listening for key changes, so a request costs
the hash comparison and no round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from comfy_serverless.access.gate import AccessGate
from comfy_serverless.access.rate_limit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from comfy_serverless.access.tiers import load_access_policy
from comfy_serverless.auth.authenticator import KeyAuthenticator
from comfy_serverless.auth.keys import authenticate, issue_key
from comfy_serverless.store.store import Store
from comfy_serverless.testing import scratch_postgres_schema

Step = Callable[[], Awaitable[object]]


async def _time(step: Step, requests: int) -> list[float]:
    for _ in range(min(200, requests)):
        await step()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def _line(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"{label:<56} median {statistics.median(ordered):7.1f} µs   p99 {p99:7.1f} µs"


async def _bench(store: Store, limiter: RateLimiter, label: str, requests: int) -> None:
    await store.migrate()
    issued = issue_key("secret", "enterprise",
                       custom_limits={"requests_per_minute": 100_000_000})
    await store.access.create_api_key(issued.record)
    key = issued.record
    gate = AccessGate(load_access_policy(None), limiter)
    keys = KeyAuthenticator(store)

    async def both() -> None:
        await gate.throttle(await keys.authenticate(issued.plaintext))

    print(_line(f"{label}: authenticate, uncached (before)", await _time(
        lambda: authenticate(store, issued.plaintext), requests)))
    async with keys.listening():
        print(_line(f"{label}: authenticate, key cache (after)", await _time(
            lambda: keys.authenticate(issued.plaintext), requests)))
        print(_line(f"{label}: rate limit", await _time(lambda: gate.throttle(key), requests)))
        print(_line(f"{label}: cached authenticate + rate limit", await _time(both, requests)))
    await gate.close()


async def _run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with scratch_postgres_schema(args.postgres, "bench") as postgres_url:
            stores = [("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}"),
                      ("postgres", postgres_url)]
            await _each(stores, args)


async def _each(stores: list[tuple[str, str]], args: argparse.Namespace) -> None:
    for store_name, url in stores:
        for limiter_name in ("memory", "redis"):
            store = await Store.open(url)
            limiter: RateLimiter = (MemoryRateLimiter() if limiter_name == "memory"
                                    else RedisRateLimiter(args.redis))
            try:
                await _bench(store, limiter, f"{store_name} + {limiter_name}", args.requests)
            finally:
                await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
