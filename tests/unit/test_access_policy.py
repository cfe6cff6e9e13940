"""Tiers, the rate limit's arithmetic (in memory and in Redis), and model references."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from comfy_serverless.access.gate import AccessGate
from comfy_serverless.access.rate_limit import MemoryRateLimiter, RedisRateLimiter, gcra
from comfy_serverless.access.tiers import DEFAULT_MODEL_GROUPS, TierConfigError, load_access_policy
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.testing import free_port
from comfy_serverless.validation.model_references import disallowed_models, model_references
from workloads.workflows import tiny_sd15


def test_the_default_tiers_are_the_spec_numbers() -> None:
    policy = load_access_policy(None)
    basic, pro, enterprise = (policy.tier(name) for name in ("basic", "pro", "enterprise"))
    assert (basic.requests_per_minute, basic.burst_allowance, basic.concurrent_executions,
            basic.max_queue_size, basic.monthly_quota, basic.timeout_limit) == (10, 5, 3, 10, 100,
                                                                               300)
    assert (pro.requests_per_minute, pro.concurrent_executions, pro.max_queue_size,
            pro.monthly_quota, pro.timeout_limit) == (60, 10, 50, 1000, 1800)
    assert basic.allowed_gpu_types == ["T4"]
    assert pro.allowed_gpu_types == ["T4", "A10G", "A100"]
    assert enterprise.allowed_gpu_types is None
    assert enterprise.models == ("all_models", "custom_models")


def test_a_tiers_file_in_the_spec_shape_merges_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "tiers.json"
    path.write_text(json.dumps({
        "permission_levels": {"basic": {"max_concurrent_executions": 1,
                                        "models": ["starter"]}},
        "rate_limits": {"pro": {"requests_per_minute": 120},
                        "team": {"requests_per_minute": 30, "burst_allowance": 0,
                                 "concurrent_executions": 5, "max_queue_size": 20,
                                 "timeout_limit": 600, "models": ["all_models"],
                                 "gpu_types": ["A10G"], "monthly_quota": None}},
        "model_groups": {"starter": ["checkpoints/tiny-*"]},
    }))
    policy = load_access_policy(path)
    assert policy.tier("basic").concurrent_executions == 1
    assert policy.tier("basic").requests_per_minute == 10
    assert policy.tier("pro").requests_per_minute == 120
    assert policy.tier("team").monthly_quota is None
    assert policy.model_patterns(policy.tier("basic")) == ("checkpoints/tiny-*",)
    limited = policy.limits_for("team", {"requests_per_minute": 3, "unknown": 9})
    assert limited.requests_per_minute == 3
    assert limited.burst_capacity == 3


@pytest.mark.parametrize("content", [
    "{not json", json.dumps({"tiers": {"basic": {"requests_per_minute": 0}}}),
    json.dumps({"tiers": {"new": {"requests_per_minute": 5}}}),
    json.dumps({"tiers": {"basic": {"models": ["nowhere"]}}}),
    json.dumps({"tier": {}}),
])
def test_a_broken_tiers_file_is_refused_at_start(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tiers.json"
    path.write_text(content)
    with pytest.raises(TierConfigError):
        load_access_policy(path)


def test_gcra_allows_the_burst_then_one_request_per_interval() -> None:
    tat = None
    allowed = 0
    for _ in range(20):
        decision, tat = gcra(tat, 1000.0, 10, 15)
        allowed += decision.allowed
    assert allowed == 15
    refused, _ = gcra(tat, 1000.0, 10, 15)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(6.0)
    later, _ = gcra(tat, 1006.0, 10, 15)
    assert later.allowed
    assert later.remaining == 0
    rested, _ = gcra(tat, 1000.0 + 15 * 6, 10, 15)
    assert rested.allowed
    assert rested.remaining == 14


async def _spend(limiter: MemoryRateLimiter | RedisRateLimiter, key: str, count: int
                 ) -> list[bool]:
    return [(await limiter.hit(key, 60, 4)).allowed for _ in range(count)]


async def test_memory_and_redis_limiters_agree() -> None:
    redis = RedisRateLimiter("redis://127.0.0.1:6379/0")
    try:
        key = f"test-{secrets.token_hex(6)}"
        assert await _spend(redis, key, 6) == [True] * 4 + [False] * 2
        assert await _spend(MemoryRateLimiter(), key, 6) == [True] * 4 + [False] * 2
        decision = await redis.hit(key, 60, 4)
        assert not decision.allowed
        assert 0 < decision.retry_after <= 1.0
        assert 3.0 < decision.reset_after <= 4.0
    finally:
        await redis.close()


def test_model_references_and_groups() -> None:
    graph = tiny_sd15(1)
    graph["9"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "detail.safetensors",
                                                          "strength_model": 1.0}}
    graph["10"] = {"class_type": "CustomLoader", "inputs": {"path": "sneaky.ckpt"}}
    references = model_references(graph)
    assert references == ["checkpoints/tiny-sd15.safetensors", "loras/detail.safetensors",
                          "other/sneaky.ckpt"]
    assert disallowed_models(references, DEFAULT_MODEL_GROUPS["basic_models"]) == \
        ["other/sneaky.ckpt"]
    assert disallowed_models(references, DEFAULT_MODEL_GROUPS["all_models"]) == []


async def test_an_unreachable_redis_lets_requests_through() -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    gate = AccessGate(load_access_policy(None), RedisRateLimiter(closed))
    try:
        key = issue_key("secret", "basic").record
        assert [await gate.throttle(key) for _ in range(20)] == [None] * 20
    finally:
        await gate.close()
