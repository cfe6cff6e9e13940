"""Requests per minute with a burst allowance: the generic cell rate algorithm (GCRA).

A key may send `requests_per_minute` steadily, one every `interval` = 60 / rate seconds, and
a rested key may send `capacity` = rate + burst_allowance at once. The only state is the
theoretical arrival time (TAT) of the key's next request: a request is allowed while
`TAT - now <= interval * (capacity - 1)`, and each allowed request pushes TAT on by one
interval. In one process the TATs live in a dict; across API replicas they live in Redis and
one Lua script reads and writes them atomically, on Redis's clock, so the replicas share one
budget whatever their clocks say.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "MemoryRateLimiter",
    "RateDecision",
    "RateLimiter",
    "RedisRateLimiter",
    "gcra",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int  # requests per minute
    capacity: int  # the burst a rested key may send
    remaining: int
    reset_after: float  # seconds until the key is fully rested again
    retry_after: float  # seconds until the next request would be allowed (0 when allowed)

    def reset_at(self, now: float) -> int:
        return math.ceil(now + self.reset_after)


def gcra(tat: float | None, now: float, rate_per_minute: int, capacity: int
         ) -> tuple[RateDecision, float]:
    """One step: the decision and the TAT to store (unchanged when refused)."""
    interval = 60.0 / rate_per_minute
    tolerance = interval * (capacity - 1)
    current = max(tat if tat is not None else now, now)
    if current - now > tolerance:
        retry = current - now - tolerance
        return RateDecision(False, rate_per_minute, capacity, 0, current - now, retry), current
    new_tat = current + interval
    remaining = max(0, math.floor((interval * capacity - (new_tat - now)) / interval + 1e-9))
    return RateDecision(True, rate_per_minute, capacity, remaining, new_tat - now, 0.0), new_tat


class RateLimiter(Protocol):
    async def hit(self, key_id: str, rate_per_minute: int, capacity: int) -> RateDecision: ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """For one API process (the embedded default)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._tats: dict[str, float] = {}
        self._clock = clock

    async def hit(self, key_id: str, rate_per_minute: int, capacity: int) -> RateDecision:
        now = self._clock()
        decision, tat = gcra(self._tats.get(key_id), now, rate_per_minute, capacity)
        self._tats[key_id] = tat
        if len(self._tats) > 100_000:
            self._forget_rested(now)
        return decision

    def _forget_rested(self, now: float) -> None:
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}

    async def close(self) -> None:
        self._tats.clear()


# The same step as gcra(), in microseconds, on Redis's clock. Returns
# {allowed, remaining, reset_after_us, retry_after_us}.
_GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tolerance = interval * (capacity - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, 0, tat - now, tat - now - tolerance}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor((interval * capacity - (new_tat - now)) / interval)
return {1, remaining, new_tat - now, 0}
"""


_REDIS_TIMEOUT = 0.5


class RedisRateLimiter:
    """Shared by every API replica that points at the same Redis."""

    def __init__(self, url: str, *, namespace: str = "comfy_serverless:rate") -> None:
        from redis.asyncio import Redis

        # A Redis that hangs must not hang the API: past these, the request goes through.
        self._redis = Redis.from_url(url, socket_timeout=_REDIS_TIMEOUT,
                                     socket_connect_timeout=_REDIS_TIMEOUT)
        self._script = self._redis.register_script(_GCRA_SCRIPT)
        self._namespace = namespace

    async def hit(self, key_id: str, rate_per_minute: int, capacity: int) -> RateDecision:
        interval_us = 60_000_000 // rate_per_minute
        allowed, remaining, reset_us, retry_us = await self._script(
            keys=[f"{self._namespace}:{key_id}"], args=[interval_us, capacity])
        return RateDecision(bool(allowed), rate_per_minute, capacity, max(0, int(remaining)),
                            int(reset_us) / 1e6, int(retry_us) / 1e6)

    async def close(self) -> None:
        await self._redis.aclose()


def build_rate_limiter(redis_url: str | None) -> RateLimiter:
    if redis_url:
        log.info("rate limits are shared through Redis")
        return RedisRateLimiter(redis_url)
    return MemoryRateLimiter()
