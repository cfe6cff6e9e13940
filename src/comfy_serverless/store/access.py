"""The access side of the store: API keys (creation, lookup, administration), and admission
of new executions.

Admission is one transaction per submit. It first locks the key's row (`FOR UPDATE` on
PostgreSQL; SQLite's writers already take turns), so two replicas submitting for one key
take turns too: the idempotency lookup, the limit checks, the monthly count and the insert
see each other's effects, and a concurrent duplicate creates exactly one execution. The
tier-wide queue size is guarded by a tier lock, taken only near the limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Literal

from comfy_serverless.store.connector import Connector, Params, Session
from comfy_serverless.store.records import ApiKeyRecord, ExecutionRecord, NewExecution

__all__ = [
    "KEY_CHANNEL",
    "AccessStore",
    "Admitted",
    "AdmissionLimits",
    "IdempotencyClaim",
    "LimitReached",
    "Replayed",
]

# How many admissions of one tier may be in flight at once while the tier's queue is
# counted without its lock; closer than this to max_queue_size, the lock is taken.
_TIER_LOCK_MARGIN = 64

# Named in migration 0017's trigger too: the payload is a changed key's lookup prefix.
KEY_CHANNEL = "comfy_serverless_keys"

LimitName = Literal["concurrent_executions", "max_queue_size", "monthly_quota"]


@dataclass(frozen=True)
class AdmissionLimits:
    tier: str
    concurrent_executions: int
    max_queue_size: int
    monthly_quota: int | None
    period: str  # the calendar month (UTC) that monthly_quota counts, e.g. "2026-11"


@dataclass(frozen=True)
class IdempotencyClaim:
    request_key: str
    fingerprint: str
    cutoff: float  # keys recorded before this time have expired


@dataclass(frozen=True)
class Admitted:
    execution_id: str


@dataclass(frozen=True)
class Replayed:
    execution_id: str
    same_request: bool


@dataclass(frozen=True)
class LimitReached:
    limit: LimitName
    current: int
    maximum: int


Admission = Admitted | Replayed | LimitReached


class AccessStore:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    # ------------------------------------------------------------------ keys

    async def create_api_key(self, key: ApiKeyRecord) -> None:
        await self._db.execute(
            self._sql["insert_api_key"],
            {
                "id": key.id, "prefix": key.prefix, "secret_hash": key.secret_hash,
                "kind": key.kind, "tier": key.tier, "is_admin": int(key.is_admin),
                "name": key.name, "created_at": key.created_at,
                "custom_limits": json.dumps(key.custom_limits) if key.custom_limits else None,
            },
        )

    async def api_key_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        """The key a bearer token's prefix names (authentication compares its secret)."""
        row = await self._db.fetch_one(self._sql["api_key_by_prefix"], {"prefix": prefix})
        return ApiKeyRecord.from_row(row) if row else None

    async def touch_api_key(self, key_id: str, now: float) -> None:
        await self._db.execute(self._sql["touch_api_key"], {"id": key_id, "now": now})

    def listen_for_key_changes(self, *, on_change: Callable[[str], None],
                               on_listening: Callable[[bool], None]
                               ) -> AbstractAsyncContextManager[None]:
        """Calls `on_change(prefix)` when any process creates, changes or deletes a key
        (PostgreSQL NOTIFY, sent by migration 0017's trigger, old and new prefix alike),
        and `on_listening` as the LISTEN connection comes and goes (never on SQLite)."""
        return self._db.listen({KEY_CHANNEL: on_change}, on_listening)

    # ------------------------------------------------------------------ key administration

    async def keys(self) -> list[ApiKeyRecord]:
        return [ApiKeyRecord.from_row(row) for row in await self._db.fetch_all(
            self._sql["api_keys_all"])]

    async def key(self, key_id: str) -> ApiKeyRecord | None:
        row = await self._db.fetch_one(self._sql["api_key_by_id"], {"id": key_id})
        return ApiKeyRecord.from_row(row) if row else None

    async def revoke(self, key_id: str, now: float) -> bool:
        return await self._db.execute(self._sql["revoke_api_key"],
                                      {"id": key_id, "now": now}) == 1

    async def rotate(self, key_id: str, prefix: str, secret_hash: str, now: float) -> bool:
        """Give the key a new secret; the old one stops working at once."""
        return await self._db.execute(
            self._sql["rotate_api_key"],
            {"id": key_id, "prefix": prefix, "secret_hash": secret_hash, "now": now}) == 1

    async def set_custom_limits(self, key_id: str, limits: dict[str, int | None] | None
                                ) -> bool:
        encoded = json.dumps(limits) if limits else None
        return await self._db.execute(self._sql["set_custom_limits"],
                                      {"id": key_id, "custom_limits": encoded}) == 1

    # ------------------------------------------------------------------ admission

    async def admit(self, execution: NewExecution, limits: AdmissionLimits,
                    idempotency: IdempotencyClaim | None) -> Admission:
        key_id = execution.api_key_id
        async with self._db.transaction() as tx:
            await tx.fetch_one(self._sql["lock_api_key"], {"id": key_id})
            if idempotency is not None:
                replay = await self._replay(tx, key_id, idempotency)
                if replay is not None:
                    return replay
            refusal = await self._check_limits(tx, key_id, limits)
            if refusal is not None:
                return refusal
            await tx.execute(self._sql["insert_execution"], execution.params())
            await tx.execute(self._sql["count_key_usage"],
                             {"api_key_id": key_id, "period": limits.period})
            if idempotency is not None:
                await tx.execute(self._sql["insert_idempotency_key"], {
                    "api_key_id": key_id, "request_key": idempotency.request_key,
                    "fingerprint": idempotency.fingerprint, "execution_id": execution.id,
                    "now": execution.submitted_at})
        return Admitted(execution.id)

    async def idempotent_execution(self, key_id: str, claim: IdempotencyClaim
                                   ) -> Replayed | None:
        """A read, outside any transaction: the execution a live request key names."""
        row = await self._db.fetch_one(self._sql["idempotency_key"],
                                       {"api_key_id": key_id, "request_key": claim.request_key})
        if row is None or float(row["created_at"]) < claim.cutoff:
            return None
        return Replayed(str(row["execution_id"]), row["fingerprint"] == claim.fingerprint)

    async def _replay(self, tx: Session, key_id: str, claim: IdempotencyClaim
                      ) -> Replayed | None:
        params = {"api_key_id": key_id, "request_key": claim.request_key}
        await tx.execute(self._sql["forget_idempotency_key"], {**params, "cutoff": claim.cutoff})
        row = await tx.fetch_one(self._sql["idempotency_key"], params)
        if row is None:
            return None
        return Replayed(str(row["execution_id"]), row["fingerprint"] == claim.fingerprint)

    async def _check_limits(self, tx: Session, key_id: str, limits: AdmissionLimits
                            ) -> LimitReached | None:
        """The first limit the admission would pass, from one read of the three counts."""
        row = await tx.fetch_one(self._sql["admission_counts"], {
            "api_key_id": key_id, "concurrent_cap": limits.concurrent_executions,
            "tier": limits.tier, "queue_cap": limits.max_queue_size, "period": limits.period})
        assert row is not None  # a SELECT without FROM answers one row
        unfinished, queued, used = int(row["unfinished"]), int(row["queued"]), int(row["used"])
        if unfinished >= limits.concurrent_executions:
            return LimitReached("concurrent_executions", unfinished,
                                limits.concurrent_executions)
        if queued + _TIER_LOCK_MARGIN >= limits.max_queue_size:
            queued = await self._queued_in_tier_locked(tx, limits)
        if queued >= limits.max_queue_size:
            return LimitReached("max_queue_size", queued, limits.max_queue_size)
        if limits.monthly_quota is not None and used >= limits.monthly_quota:
            return LimitReached("monthly_quota", used, limits.monthly_quota)
        return None

    async def _queued_in_tier_locked(self, tx: Session, limits: AdmissionLimits) -> int:
        """The tier's queued executions, counted again under the tier's lock. The key's row
        lock does not order admissions of different keys, so near the limit they also take
        the tier's lock: exact at the limit, and no tier-wide turn-taking while the queue is
        far from full."""
        params = {"tier": limits.tier, "cap": limits.max_queue_size}
        await tx.fetch_one(self._sql["lock_tier_queue"], params)
        return await self._count(tx, "count_queued_for_tier", params)

    async def _count(self, tx: Session, query: str, params: Params,
                     column: str = "n") -> int:
        row = await tx.fetch_one(self._sql[query], params)
        return int(row[column]) if row else 0

    async def usage(self, key_id: str, period: str) -> int:
        row = await self._db.fetch_one(self._sql["key_usage"],
                                       {"api_key_id": key_id, "period": period})
        return int(row["executions"]) if row else 0

    async def unfinished(self, key_id: str, limit: int = 1000) -> list[ExecutionRecord]:
        """The key's queued and processing executions, running ones first."""
        rows = await self._db.fetch_all(self._sql["unfinished_for_key"],
                                        {"api_key_id": key_id, "limit": limit})
        return [ExecutionRecord.from_row(row) for row in rows]

    async def forget_idempotency_keys(self, cutoff: float) -> int:
        return await self._db.execute(self._sql["forget_idempotency_keys"], {"cutoff": cutoff})
