"""The refusals of access control, each in the spec's error shape with its own error_code."""

from __future__ import annotations

import math
from typing import Any

from comfy_serverless.access.rate_limit import RateDecision
from comfy_serverless.errors import ApiError

__all__ = [
    "Forbidden",
    "IdempotencyKeyReused",
    "ModelNotAllowed",
    "MonthlyQuotaExceeded",
    "QueueFull",
    "RateLimitExceeded",
    "TimeoutLimitExceeded",
    "rate_limit_headers",
]


class Forbidden(ApiError):
    status_code = 403
    error_code = "FORBIDDEN"


class ModelNotAllowed(ApiError):
    status_code = 403
    error_code = "MODEL_NOT_ALLOWED"


class TimeoutLimitExceeded(ApiError):
    status_code = 403
    error_code = "TIMEOUT_LIMIT_EXCEEDED"


class IdempotencyKeyReused(ApiError):
    status_code = 409
    error_code = "IDEMPOTENCY_KEY_REUSED"


class _TooMany(ApiError):
    status_code = 429

    def __init__(self, message: str, details: dict[str, Any], retry_after: float,
                 headers: dict[str, str] | None = None) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(message, {**details, "retry_after": seconds}, headers={
            **(headers or {}), "Retry-After": str(seconds),
            "X-RateLimit-Retry-After": str(seconds)})


class RateLimitExceeded(_TooMany):
    """Too many requests per minute, or too many executions in flight (the spec's body)."""

    error_code = "RATE_LIMIT_EXCEEDED"


class QueueFull(_TooMany):
    error_code = "QUEUE_FULL"


class MonthlyQuotaExceeded(_TooMany):
    error_code = "QUOTA_EXCEEDED"


def rate_limit_headers(decision: RateDecision, now: float) -> dict[str, str]:
    """The legacy X-RateLimit-* trio and the IETF draft's RateLimit / RateLimit-Policy.

    X-RateLimit-Limit is the bucket's capacity (requests_per_minute + burst_allowance): what
    a rested key may send at once, so Remaining, what it may still send now, never exceeds
    it. The steady rate and the burst are spelled out in RateLimit-Policy."""
    reset_seconds = math.ceil(decision.reset_after)
    return {
        "X-RateLimit-Limit": str(decision.capacity),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_at(now)),
        "RateLimit-Policy":
            f'"requests";q={decision.limit};w=60;burst={decision.capacity - decision.limit}',
        "RateLimit": f'"requests";r={decision.remaining};t={reset_seconds}',
    }
