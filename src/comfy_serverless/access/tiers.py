"""Tiers: the spec's `permission_levels` and `rate_limits`, merged into one policy.

The defaults are the spec's numbers. An operator replaces or extends them with one JSON file
(`tiers_file`), written either as `{"tiers": {...}}` with the merged fields, or in the spec's
own two sections, `{"permission_levels": {...}, "rate_limits": {...}}`, or both; later
sections override earlier ones field by field. `model_groups` names the patterns that a
tier's `models` refer to. A tier's `model_sources` lists the host globs (`*.example.com`,
`s3://<bucket glob>`) its workflows may fetch models from; none by default, so an operator
opts in. A key's `custom_limits` override its tier's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "DEFAULT_MODEL_GROUPS",
    "LIMIT_BOUNDS",
    "OVERRIDABLE_LIMITS",
    "AccessPolicy",
    "Tier",
    "TierConfigError",
    "load_access_policy",
]


class TierConfigError(ValueError):
    """The tiers file cannot be read or does not describe complete tiers."""


@dataclass(frozen=True)
class Tier:
    name: str
    requests_per_minute: int
    burst_allowance: int
    concurrent_executions: int
    max_queue_size: int
    monthly_quota: int | None
    timeout_limit: int
    models: tuple[str, ...]
    gpu_types: tuple[str, ...]
    dedicated_resources: bool = False
    custom_limits: bool = False
    model_sources: tuple[str, ...] = ()

    @property
    def burst_capacity(self) -> int:
        """Requests a rested key may send at once: a minute's rate plus the burst allowance."""
        return self.requests_per_minute + self.burst_allowance

    @property
    def allowed_gpu_types(self) -> list[str] | None:
        """What the queue matches against a worker's GPU type at claim time (None: any)."""
        return None if "all" in self.gpu_types else list(self.gpu_types)

    def with_overrides(self, overrides: Mapping[str, int | None]) -> Tier:
        """The tier with a key's custom limits, each held within LIMIT_BOUNDS (so a value
        stored before the bounds existed cannot overflow the store's integers)."""
        known: dict[str, Any] = {name: _bounded(name, value) for name, value in overrides.items()
                                 if name in OVERRIDABLE_LIMITS}
        return replace(self, **known)

    def as_dict(self) -> dict[str, Any]:
        """The limits that apply, as an API answer shows them (without the tier's name, the
        spec's `custom_limits` flag, and the operator's `model_sources` hosts)."""
        shown = {name: value for name, value in asdict(self).items()
                 if name not in ("name", "custom_limits", "model_sources")}
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in shown.items()}


# The numbers a key's `custom_limits` may set, each with its least and greatest value.
# Least: a rate, a timeout, a slot or a queue of 0 would stop the key in ways that read as
# bugs (a 0 timeout means "none" to ComfyUI's side); revoke it instead. Greatest: far beyond
# any fleet, and far within the store's 64-bit integers and the rate limiter's arithmetic;
# a timeout is at most the day that execution_config.timeout allows.
_MOST = 1_000_000_000
LIMIT_BOUNDS: dict[str, tuple[int, int]] = {
    "requests_per_minute": (1, _MOST), "burst_allowance": (0, _MOST),
    "concurrent_executions": (1, _MOST), "max_queue_size": (1, _MOST),
    "monthly_quota": (0, _MOST), "timeout_limit": (1, 86_400),
}
OVERRIDABLE_LIMITS = frozenset(LIMIT_BOUNDS)


def _bounded(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    least, most = LIMIT_BOUNDS[name]
    return min(max(value, least), most)

_SPEC_TIERS: dict[str, dict[str, Any]] = {
    "basic": {
        "requests_per_minute": 10, "burst_allowance": 5, "concurrent_executions": 3,
        "max_queue_size": 10, "monthly_quota": 100, "timeout_limit": 300,
        "models": ["basic_models"], "gpu_types": ["T4"],
    },
    "pro": {
        "requests_per_minute": 60, "burst_allowance": 20, "concurrent_executions": 10,
        "max_queue_size": 50, "monthly_quota": 1000, "timeout_limit": 1800,
        "models": ["all_models"], "gpu_types": ["T4", "A10G", "A100"],
    },
    "enterprise": {
        "requests_per_minute": 300, "burst_allowance": 100, "concurrent_executions": 100,
        "max_queue_size": 1000, "monthly_quota": 10000, "timeout_limit": 3600,
        "models": ["all_models", "custom_models"], "gpu_types": ["all"],
        "dedicated_resources": True, "custom_limits": True,
    },
}

# Patterns over "<folder>/<filename>" (fnmatch; `*` crosses folders). The basic group is
# the SD 1.5 family by its usual file names, with the small add-ons that go with it.
DEFAULT_MODEL_GROUPS: dict[str, tuple[str, ...]] = {
    "basic_models": (
        "checkpoints/*sd15*", "checkpoints/*sd-1.5*", "checkpoints/*sd_1.5*",
        "checkpoints/*v1-5*", "loras/*", "vae/*", "embeddings/*", "upscale_models/*",
    ),
    "all_models": ("*",),
    "custom_models": (),
}


class _TierFields(BaseModel):
    """One tier's fields as a file may give them: all optional, merged over the defaults."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, ge=1)
    burst_allowance: int | None = Field(default=None, ge=0)
    concurrent_executions: int | None = Field(default=None, ge=1)
    max_concurrent_executions: int | None = Field(default=None, ge=1)
    max_queue_size: int | None = Field(default=None, ge=1)
    monthly_quota: int | None = Field(default=None, ge=0)
    timeout_limit: int | None = Field(default=None, ge=1)
    models: list[str] | None = None
    gpu_types: list[str] | None = None
    dedicated_resources: bool | None = None
    custom_limits: bool | None = None
    model_sources: list[str] | None = None

    def merged_into(self, base: dict[str, Any]) -> dict[str, Any]:
        given = self.model_dump(exclude_unset=True)
        if "max_concurrent_executions" in given:
            given.setdefault("concurrent_executions", given["max_concurrent_executions"])
            del given["max_concurrent_executions"]
        return {**base, **given}


class _TiersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    permission_levels: dict[str, _TierFields] = {}
    rate_limits: dict[str, _TierFields] = {}
    tiers: dict[str, _TierFields] = {}
    model_groups: dict[str, list[str]] = {}


@dataclass(frozen=True)
class AccessPolicy:
    tiers: Mapping[str, Tier]
    model_groups: Mapping[str, tuple[str, ...]]

    def tier(self, name: str) -> Tier:
        try:
            return self.tiers[name]
        except KeyError:
            raise TierConfigError(f"Unknown tier '{name}'; known: {sorted(self.tiers)}") from None

    def limits_for(self, tier: str, custom_limits: Mapping[str, int | None] | None) -> Tier:
        base = self.tier(tier)
        return base.with_overrides(custom_limits) if custom_limits else base

    def model_patterns(self, tier: Tier) -> tuple[str, ...]:
        return tuple(pattern for group in tier.models
                     for pattern in self.model_groups.get(group, ()))


def _build_tier(name: str, fields: dict[str, Any]) -> Tier:
    missing = sorted({"requests_per_minute", "burst_allowance", "concurrent_executions",
                      "max_queue_size", "timeout_limit", "models", "gpu_types"} - set(fields))
    if missing:
        raise TierConfigError(f"Tier '{name}' lacks {', '.join(missing)}")
    fields.setdefault("monthly_quota", None)
    return Tier(name=name, **{**fields, "models": tuple(fields["models"]),
                              "gpu_types": tuple(fields["gpu_types"]),
                              "model_sources": tuple(fields.get("model_sources") or ())})


def _read(path: Path) -> _TiersFile:
    try:
        return _TiersFile.model_validate(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise TierConfigError(f"Cannot use the tiers file {path}: {exc}") from exc


def load_access_policy(path: Path | None) -> AccessPolicy:
    """The spec's tiers, with the file's sections merged over them when a file is given."""
    merged: dict[str, dict[str, Any]] = {name: dict(fields) for name, fields in _SPEC_TIERS.items()}
    groups = dict(DEFAULT_MODEL_GROUPS)
    if path is not None:
        config = _read(path)
        for section in (config.permission_levels, config.rate_limits, config.tiers):
            for name, fields in section.items():
                merged[name] = fields.merged_into(merged.get(name, {}))
        groups.update({name: tuple(patterns) for name, patterns in config.model_groups.items()})
    tiers = {name: _build_tier(name, fields) for name, fields in merged.items()}
    unknown = sorted({group for tier in tiers.values() for group in tier.models} - set(groups))
    if unknown:
        raise TierConfigError(f"Tiers name model groups that are not defined: {unknown}")
    return AccessPolicy(tiers, groups)
