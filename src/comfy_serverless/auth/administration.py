"""Creating, listing, revoking and rotating keys, and setting their limits: one set of
operations behind both the CLI (`comfy-serverless keys …`) and the admin routes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from comfy_serverless.access.tiers import LIMIT_BOUNDS, OVERRIDABLE_LIMITS, AccessPolicy
from comfy_serverless.auth.keys import IssuedKey, KeyKind, issue_key, new_secret
from comfy_serverless.errors import ApiError, RequestInvalid
from comfy_serverless.store.records import ApiKeyRecord
from comfy_serverless.store.store import Store
from comfy_serverless.timefmt import utc_iso

__all__ = ["KeyAdministration", "KeyNotFound", "key_view", "parse_limits"]


class KeyNotFound(ApiError):
    status_code = 404
    error_code = "API_KEY_NOT_FOUND"


def parse_limits(pairs: dict[str, Any]) -> dict[str, int | None]:
    """custom_limits as given (JSON or `name=value` pairs): known names, whole numbers
    within each limit's bounds (LIMIT_BOUNDS), or null to take the tier's value again."""
    unknown = sorted(set(pairs) - OVERRIDABLE_LIMITS)
    if unknown:
        raise RequestInvalid(f"Unknown limits {unknown}",
                             {"field": "custom_limits", "allowed": sorted(OVERRIDABLE_LIMITS)})
    limits: dict[str, int | None] = {}
    for name, value in pairs.items():
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            limits[name] = None
            continue
        limits[name] = _bounded_limit(name, value)
    return limits


def _bounded_limit(name: str, value: Any) -> int:
    least, most = LIMIT_BOUNDS[name]
    digits = isinstance(value, str) and value.isdigit() and len(value) <= len(str(most))
    number = int(value) if digits else value
    if isinstance(number, bool) or not isinstance(number, int) or not least <= number <= most:
        raise RequestInvalid(
            f"Limit {name} must be a whole number from {least} to {most}, or null",
            {"field": f"custom_limits.{name}", "value": str(value)[:40], "minimum": least,
             "maximum": most})
    return number


def key_view(key: ApiKeyRecord, policy: AccessPolicy) -> dict[str, Any]:
    """Everything about a key but its secret, with the limits that apply to it now."""
    return {
        "key_id": key.id, "name": key.name, "type": key.kind, "tier": key.tier,
        "admin": key.is_admin, "prefix": key.prefix,
        "created_at": utc_iso(key.created_at), "last_used_at": utc_iso(key.last_used_at),
        "rotated_at": utc_iso(key.rotated_at), "revoked_at": utc_iso(key.revoked_at),
        "custom_limits": key.custom_limits or {},
        "limits": policy.limits_for(key.tier, key.custom_limits).as_dict(),
    }


class KeyAdministration:
    def __init__(self, store: Store, policy: AccessPolicy,
                 on_change: Callable[[], None] = lambda: None) -> None:
        """`on_change` runs after each change to a key: the API process empties its key cache
        then, so that the change applies there at once (other processes learn of it through
        NOTIFY, or their cache's 1 s lifetime on SQLite)."""
        self._store = store
        self._policy = policy
        self._on_change = on_change

    async def create(self, kind: KeyKind, tier: str, *, is_admin: bool = False,
                     name: str | None = None,
                     custom_limits: dict[str, int | None] | None = None) -> IssuedKey:
        if tier not in self._policy.tiers:
            raise RequestInvalid(f"Unknown tier '{tier}'",
                                 {"field": "tier", "tiers": sorted(self._policy.tiers)})
        if kind == "public" and is_admin:
            raise RequestInvalid("A public key cannot be admin-scoped", {"field": "admin"})
        issued = issue_key(kind, tier, is_admin=is_admin, name=name,
                           custom_limits=_without_nulls(custom_limits or {}))
        await self._store.access.create_api_key(issued.record)
        return issued

    async def list(self) -> list[ApiKeyRecord]:
        return await self._store.access.keys()

    async def get(self, key_id: str) -> ApiKeyRecord:
        key = await self._store.access.key(key_id)
        if key is None:
            raise KeyNotFound(f"No API key {key_id}", {"key_id": key_id})
        return key

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        await self.get(key_id)
        await self._store.access.revoke(key_id, time.time())
        self._on_change()
        return await self.get(key_id)

    async def rotate(self, key_id: str) -> tuple[str, ApiKeyRecord]:
        """A new secret for the same key (id, tier, limits, executions); the old one stops."""
        key = await self.get(key_id)
        secret = new_secret("public" if key.is_public else "secret")
        if not await self._store.access.rotate(key_id, secret.prefix, secret.secret_hash,
                                               time.time()):
            raise RequestInvalid(f"API key {key_id} is revoked and cannot be rotated",
                                 {"key_id": key_id})
        self._on_change()
        return secret.plaintext, await self.get(key_id)

    async def set_limits(self, key_id: str, limits: dict[str, int | None]) -> ApiKeyRecord:
        """Merge into the key's overrides; a null drops that override (the tier's applies)."""
        key = await self.get(key_id)
        kept = _without_nulls({**(key.custom_limits or {}), **limits})
        await self._store.access.set_custom_limits(key_id, kept or None)
        self._on_change()
        return await self.get(key_id)


def _without_nulls(limits: dict[str, int | None]) -> dict[str, int | None]:
    return {name: value for name, value in limits.items() if value is not None}
