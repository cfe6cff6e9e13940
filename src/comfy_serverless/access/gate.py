"""The per-request check: the key's effective limits, and its requests-per-minute budget."""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from comfy_serverless.access.errors import RateLimitExceeded, rate_limit_headers
from comfy_serverless.access.rate_limit import RateDecision, RateLimiter
from comfy_serverless.access.tiers import AccessPolicy, Tier
from comfy_serverless.store.records import ApiKeyRecord

__all__ = ["AccessGate"]

log = logging.getLogger(__name__)


class AccessGate:
    def __init__(self, policy: AccessPolicy, limiter: RateLimiter) -> None:
        self.policy = policy
        self._limiter = limiter

    def limits(self, key: ApiKeyRecord) -> Tier:
        return self.policy.limits_for(key.tier, key.custom_limits)

    async def throttle(self, key: ApiKeyRecord) -> RateDecision | None:
        """Spend one request of the key's budget, or raise 429.

        If Redis cannot be reached the request goes through (logged): a rate limiter that
        fails closed would turn a Redis outage into an outage of the whole API. None then.
        """
        tier = self.limits(key)
        try:
            decision = await self._limiter.hit(key.id, tier.requests_per_minute,
                                               tier.burst_capacity)
        except (RedisError, OSError) as exc:
            log.warning("rate limit not checked for %s: %s", key.id, exc)
            return None
        if not decision.allowed:
            raise RateLimitExceeded(
                f"Rate limit exceeded. Maximum {tier.requests_per_minute} requests per minute "
                f"(burst {tier.burst_capacity}) per API key.",
                {"limit": "requests_per_minute", "requests_per_minute": tier.requests_per_minute,
                 "burst_allowance": tier.burst_allowance, "tier": key.tier},
                decision.retry_after, headers=rate_limit_headers(decision, time.time()))
        return decision

    async def close(self) -> None:
        await self._limiter.close()
