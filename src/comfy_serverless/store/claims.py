"""The claims' side of the store: a worker's claim, its lease, progress and the attempt's
outcome, and the rescuer's (expired leases, rescue, aging).

Every write after the claim is guarded by the Lease it returned (execution id, lease owner,
attempt): a write that no longer matches changes nothing and reports False, so a worker
whose job was cancelled or rescued cannot overwrite it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from comfy_serverless.store.connector import Connector
from comfy_serverless.store.records import (
    ClaimMatch,
    ExecutionRecord,
    Lease,
    LogEntry,
    OutputRecord,
    ProgressSnapshot,
)
from comfy_serverless.store.webhooks import WebhookOutbox
from comfy_serverless.store.writing import WORK_CHANNEL, LeaseLost, dumps, insert_events, notify

__all__ = ["ClaimStore"]

# A claim that brings no GPU type and no warm models: first in, first out, unrestricted rows.
_ANY_WORKER = ClaimMatch()


class ClaimStore:
    def __init__(self, connector: Connector, queries: dict[str, str],
                 webhooks: WebhookOutbox) -> None:
        self._db = connector
        self._sql = queries
        self._webhooks = webhooks

    async def claim_next(
        self, worker_id: str, lease_seconds: float, *, engine_prompt_id: str | None = None,
        resource_allocation: dict[str, Any] | None = None, match: ClaimMatch = _ANY_WORKER,
        now: float | None = None,
    ) -> ExecutionRecord | None:
        """One statement, atomic on its own: the row lock (PostgreSQL) or the write lock
        (SQLite) is taken and released within it, so no transaction round trips are needed.
        The worker may name the ComfyUI prompt id it will use, saving a write later.
        `match` carries its GPU type, environment, and warm and on-disk models (GPU-type and
        environment matching, model affinity);
        `now` is for simulations that run on their own clock."""
        now = time.time() if now is None else now
        params = {"worker_id": worker_id, "now": now, "lease_expires_at": now + lease_seconds,
                  "engine_prompt_id": engine_prompt_id,
                  "resource_allocation": dumps(resource_allocation), **match.params()}
        if not match.holds_models:
            params = {name: value for name, value in params.items()
                      if name not in ("warm_models", "disk_models", "affinity_window",
                                      "affinity_max_wait")}
        query = "claim_next" if match.holds_models else "claim_next_in_order"
        row = await self._db.fetch_one(self._sql[query], params)
        return ExecutionRecord.from_row(row) if row else None

    async def has_queued_above(self, priority: int, now: float,
                               match: ClaimMatch = _ANY_WORKER) -> bool:
        """Whether an execution more urgent than `priority` is ready to be claimed by a
        worker that brings `match` (its GPU type and environment)."""
        row = await self._db.fetch_one(self._sql["queued_above"], {
            "priority": priority, "now": now, **match.ready_params()})
        return row is not None

    async def refresh_planner_statistics(self) -> None:
        """Keep the database's idea of the queue's size current (see the query's comment)."""
        await self._db.execute(self._sql["refresh_planner_statistics"])

    async def renew_lease(self, lease: Lease, lease_seconds: float) -> bool:
        changed = await self._db.execute(
            self._sql["renew_lease"],
            {**lease.params(), "lease_expires_at": time.time() + lease_seconds},
        )
        return changed == 1

    async def still_owns(self, lease: Lease) -> bool:
        row = await self._db.fetch_one(
            self._sql["execution_status_for_worker"], {"id": lease.execution_id}
        )
        return row is not None and bool(
            row["status"] == "processing"
            and row["lease_owner"] == lease.worker_id
            and row["attempt"] == lease.attempt
        )

    async def set_engine_prompt(
        self, lease: Lease, engine_prompt_id: str, resource_allocation: dict[str, Any]
    ) -> bool:
        changed = await self._db.execute(
            self._sql["set_engine_prompt"],
            {**lease.params(), "engine_prompt_id": engine_prompt_id,
             "resource_allocation": dumps(resource_allocation)},
        )
        return changed == 1

    async def record_progress(
        self, lease: Lease, snapshot: ProgressSnapshot, log: Sequence[LogEntry] = (),
        *, webhook: dict[str, Any] | None = None, outputs: Sequence[OutputRecord] = (),
        engine_metrics: dict[str, Any] | None = None,
    ) -> bool:
        """Write progress (and, when given, an `execution.progress` webhook event and the
        GPU usage so far) at once."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                self._sql["record_progress"],
                {**lease.params(), "progress": snapshot.progress,
                 "current_node": snapshot.current_node,
                 "current_node_id": snapshot.current_node_id,
                 "current_step": snapshot.current_step, "total_steps": snapshot.total_steps,
                 "completed_nodes": snapshot.completed_nodes,
                 "engine_metrics": dumps(engine_metrics)},
            )
            if changed:
                await insert_events(tx, self._sql, lease.execution_id, log)
                await tx.execute_many(self._sql["insert_output"],
                                      [output.params() for output in outputs])
                if webhook is not None:
                    await self._webhooks.add_event(tx, lease.execution_id,
                                                   "execution.progress", webhook)
        return changed == 1

    async def complete(
        self,
        lease: Lease,
        outputs: Sequence[OutputRecord],
        final: ProgressSnapshot,
        gpu_time: float,
        log: Sequence[LogEntry] = (),
        engine_metrics: dict[str, Any] | None = None,
    ) -> bool:
        """Record outputs and completion in one transaction; False if the lease was lost.
        The status change is written last, so the event stream's `end` follows the outputs."""
        params = {**lease.params(), "now": time.time(), "gpu_time": gpu_time,
                  "current_step": final.current_step, "total_steps": final.total_steps,
                  "engine_metrics": dumps(engine_metrics)}
        if not outputs and not log:
            return await self._db.execute(self._sql["complete_execution"], params) == 1
        try:
            async with self._db.transaction() as tx:
                await tx.execute_many(self._sql["insert_output"],
                                      [output.params() for output in outputs])
                await insert_events(tx, self._sql, lease.execution_id, log)
                if await tx.execute(self._sql["complete_execution"], params) != 1:
                    raise LeaseLost
        except LeaseLost:
            return False
        return True

    async def fail(
        self, lease: Lease, error: dict[str, Any], gpu_time: float | None,
        log: Sequence[LogEntry] = (), engine_metrics: dict[str, Any] | None = None,
    ) -> bool:
        return await self._finish_attempt(
            "fail_execution", lease,
            {"now": time.time(), "error": dumps(error), "gpu_time": gpu_time,
             "engine_metrics": dumps(engine_metrics)}, log,
        )

    async def requeue(
        self, lease: Lease, error: dict[str, Any], not_before: float,
        log: Sequence[LogEntry] = (),
    ) -> bool:
        return await self._finish_attempt(
            "requeue_execution", lease, {"error": dumps(error), "not_before": not_before}, log,
        )

    async def age_queued(self, now: float, aging_seconds: float) -> int:
        """Raise the priority of executions that have waited long; how many were raised."""
        return await self._db.execute(self._sql["age_queued"],
                                      {"now": now, "aging_seconds": aging_seconds})

    async def expired_leases(self, now: float, limit: int = 100) -> list[Lease]:
        rows = await self._db.fetch_all(self._sql["expired_leases"], {"now": now, "limit": limit})
        return [Lease(row["id"], row["lease_owner"] or "", int(row["attempt"])) for row in rows]

    async def rescue(self, lease: Lease, error: dict[str, Any], *, retry_at: float | None,
                     now: float, log: Sequence[LogEntry] = ()) -> bool:
        """Requeue (retry_at given) or fail an execution whose lease expired before `now`.
        Guarded by the lease and its expiry: a worker that renewed in time keeps it."""
        if retry_at is None:
            return await self._finish_attempt(
                "rescue_fail", lease, {"now": now, "error": dumps(error)}, log)
        return await self._finish_attempt(
            "rescue_requeue", lease,
            {"now": now, "not_before": retry_at, "error": dumps(error)}, log)

    async def hand_back(self, lease: Lease, log: Sequence[LogEntry] = ()) -> bool:
        """Return a claimed execution to the queue unharmed (graceful shutdown): the attempt
        it was claimed with is given back."""
        return await self._finish_attempt("hand_back", lease, {}, log, wake_workers=True)

    async def _finish_attempt(
        self, query: str, lease: Lease, params: dict[str, Any], log: Sequence[LogEntry],
        *, wake_workers: bool = False,
    ) -> bool:
        try:
            async with self._db.transaction() as tx:
                await insert_events(tx, self._sql, lease.execution_id, log)
                if await tx.execute(self._sql[query], {**lease.params(), **params}) != 1:
                    raise LeaseLost
                if wake_workers:
                    await notify(tx, self._sql, WORK_CHANNEL, lease.execution_id)
        except LeaseLost:
            return False
        return True
