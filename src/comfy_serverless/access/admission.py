"""Submit-time rules of a key's tier: its timeout cap, its model groups, its queue limits."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from comfy_serverless.access.errors import (
    IdempotencyKeyReused,
    ModelNotAllowed,
    MonthlyQuotaExceeded,
    QueueFull,
    RateLimitExceeded,
    TimeoutLimitExceeded,
)
from comfy_serverless.access.tiers import AccessPolicy, Tier
from comfy_serverless.errors import ApiError, RequestInvalid
from comfy_serverless.store.access import AdmissionLimits, IdempotencyClaim, LimitReached
from comfy_serverless.validation.model_references import disallowed_models, model_references

__all__ = [
    "IDEMPOTENCY_TTL_SECONDS",
    "admission_limits",
    "check_model_references",
    "check_models",
    "check_timeout",
    "idempotency_claim",
    "limit_refusal",
    "month_start",
    "reused_key",
]

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
_MAX_REQUEST_KEY_LENGTH = 255


def check_timeout(asked: int | None, tier: Tier) -> None:
    if asked is not None and asked > tier.timeout_limit:
        raise TimeoutLimitExceeded(
            f"execution_config.timeout {asked}s is above the {tier.timeout_limit}s "
            f"that the '{tier.name}' tier allows",
            {"field": "execution_config.timeout", "requested": asked,
             "timeout_limit": tier.timeout_limit, "tier": tier.name})


def check_models(graph: dict[str, Any], tier: Tier, policy: AccessPolicy) -> None:
    check_model_references(model_references(graph), tier, policy)


def check_model_references(references: list[str], tier: Tier, policy: AccessPolicy) -> None:
    """403 unless every "<folder>/<file>" is in one of the tier's model groups."""
    refused = disallowed_models(references, policy.model_patterns(tier))
    if refused:
        raise ModelNotAllowed(
            f"The '{tier.name}' tier may not use {', '.join(refused)}",
            {"models": refused, "tier": tier.name, "allowed_model_groups": list(tier.models)})


def month_start(now: float) -> datetime:
    moment = datetime.fromtimestamp(now, UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(now: float) -> datetime:
    start = month_start(now)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else \
        start.replace(month=start.month + 1)


def admission_limits(tier: Tier, now: float) -> AdmissionLimits:
    return AdmissionLimits(tier=tier.name, concurrent_executions=tier.concurrent_executions,
                           max_queue_size=tier.max_queue_size, monthly_quota=tier.monthly_quota,
                           period=month_start(now).strftime("%Y-%m"))


def idempotency_claim(request_key: str | None, alias: str | None, fingerprint_of: Any,
                      now: float) -> IdempotencyClaim | None:
    """X-Request-ID, or its alias Idempotency-Key; the same value if both are given."""
    if request_key and alias and request_key != alias:
        raise RequestInvalid("X-Request-ID and Idempotency-Key differ; send one of them",
                             {"x_request_id": request_key, "idempotency_key": alias})
    key = request_key or alias
    if key is None:
        return None
    if not 1 <= len(key) <= _MAX_REQUEST_KEY_LENGTH or not key.isprintable():
        raise RequestInvalid(
            f"A request id is 1 to {_MAX_REQUEST_KEY_LENGTH} printable characters",
            {"header": "X-Request-ID"})
    encoded = json.dumps(fingerprint_of, sort_keys=True, separators=(",", ":"))
    return IdempotencyClaim(key, hashlib.sha256(encoded.encode()).hexdigest(),
                            now - IDEMPOTENCY_TTL_SECONDS)


def reused_key(claim: IdempotencyClaim, execution_id: str) -> ApiError:
    return IdempotencyKeyReused(
        "This request id was already used, within 24 h, for a different request",
        {"request_id": claim.request_key, "execution_id": execution_id,
         "suggestion": "Use a new X-Request-ID for a new request"})


def limit_refusal(reached: LimitReached, tier: Tier, retry_after: float, *,
                  upgrade_url: str | None = None) -> ApiError:
    if reached.limit == "concurrent_executions":
        return RateLimitExceeded(
            f"Rate limit exceeded. Maximum {reached.maximum} concurrent executions per API key.",
            {"current_executions": reached.current, "max_concurrent": reached.maximum,
             "upgrade_url": upgrade_url, "tier": tier.name}, retry_after)
    if reached.limit == "max_queue_size":
        return QueueFull(
            f"The '{tier.name}' tier already has {reached.current} executions waiting, "
            f"its maximum queue size",
            {"queued_executions": reached.current, "max_queue_size": reached.maximum,
             "tier": tier.name}, retry_after)
    resets = _next_month(time.time())
    return MonthlyQuotaExceeded(
        f"Monthly quota of {reached.maximum} executions used up; it renews on "
        f"{resets.strftime('%Y-%m-%d')} (UTC)",
        {"executions_this_month": reached.current, "monthly_quota": reached.maximum,
         "resets_at": resets.strftime("%Y-%m-%dT%H:%M:%SZ"), "tier": tier.name},
        resets.timestamp() - time.time())
