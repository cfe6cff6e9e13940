"""The store: the one door to the database, for SQLite and PostgreSQL alike.

It is the only code that knows the queries and what a row means. Worker writes are guarded
by a Lease (execution id, lease owner, attempt): a write that no longer matches changes
nothing and reports False, so a worker whose job was cancelled or rescued cannot overwrite it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from comfy_serverless.store.access import AccessStore
from comfy_serverless.store.connector import Connector, Session, connect
from comfy_serverless.store.events import ExecutionStream
from comfy_serverless.store.fleet import FleetStore
from comfy_serverless.store.migrations import apply_migrations
from comfy_serverless.store.models import ModelRegistry
from comfy_serverless.store.queries import load_queries
from comfy_serverless.store.records import (
    ApiKeyRecord,
    ClaimMatch,
    ExecutionRecord,
    Lease,
    LogEntry,
    NewExecution,
    OutputRecord,
    ProgressSnapshot,
    WorkerState,
)
from comfy_serverless.store.retention import OutputRetention
from comfy_serverless.store.webhooks import WebhookOutbox

__all__ = ["CANCEL_CHANNEL", "WORK_CHANNEL", "Store"]

WORK_CHANNEL = "comfy_serverless_work"  # also named in migration 0004's trigger
CANCEL_CHANNEL = "comfy_serverless_cancel"


# A claim that brings no GPU type and no warm models: first in, first out, unrestricted rows.
_ANY_WORKER = ClaimMatch()


class _LeaseLost(Exception):
    """Raised inside a transaction to roll it back when the guarded update matched nothing."""


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class Store:
    def __init__(self, connector: Connector) -> None:
        self._db = connector
        self._sql = load_queries(connector.dialect)
        self.webhooks = WebhookOutbox(connector, self._sql)
        self.access = AccessStore(connector, self._sql)
        self.models = ModelRegistry(connector, self._sql)
        self.retention = OutputRetention(connector, self._sql)
        self.fleet = FleetStore(connector, self._sql)
        self.stream = ExecutionStream(connector, self._sql)

    @classmethod
    async def open(cls, database_url: str) -> Store:
        return cls(await connect(database_url))

    @property
    def dialect(self) -> str:
        return self._db.dialect

    async def migrate(self) -> list[int]:
        return await apply_migrations(self._db)

    async def close(self) -> None:
        await self._db.close()

    # ------------------------------------------------------------------ API keys

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
        row = await self._db.fetch_one(self._sql["api_key_by_prefix"], {"prefix": prefix})
        return ApiKeyRecord.from_row(row) if row else None

    async def touch_api_key(self, key_id: str, now: float) -> None:
        await self._db.execute(self._sql["touch_api_key"], {"id": key_id, "now": now})

    # ------------------------------------------------------------------ submitting and reading

    # ------------------------------------------------------------------ notifications

    def listen(self, *, on_work: Callable[[], None], on_cancel: Callable[[str], None]
               ) -> AbstractAsyncContextManager[None]:
        """Wake-ups from other processes (PostgreSQL LISTEN/NOTIFY; a no-op on SQLite)."""
        return self._db.listen({WORK_CHANNEL: lambda _: on_work(), CANCEL_CHANNEL: on_cancel})

    async def _notify(self, tx: Session, channel: str, payload: str) -> None:
        """Sent when the transaction commits, so a woken worker sees the row."""
        await tx.fetch_one(self._sql["notify"], {"channel": channel, "payload": payload})

    async def create_execution(self, execution: NewExecution) -> None:
        """One statement: a trigger logs `execution_queued` and (PostgreSQL) wakes workers."""
        await self._db.execute(self._sql["insert_execution"], execution.params())

    async def execution_for_key(self, execution_id: str, api_key_id: str) -> ExecutionRecord | None:
        row = await self._db.fetch_one(
            self._sql["execution_for_key"], {"id": execution_id, "api_key_id": api_key_id}
        )
        return ExecutionRecord.from_row(row) if row else None

    async def execution(self, execution_id: str) -> ExecutionRecord | None:
        row = await self._db.fetch_one(self._sql["execution_by_id"], {"id": execution_id})
        return ExecutionRecord.from_row(row) if row else None

    async def queue_position(self, execution: ExecutionRecord) -> int:
        """1-based position among queued executions in claim order (0 once it has left)."""
        if execution.status != "queued":
            return 0
        row = await self._db.fetch_one(
            self._sql["queue_position"],
            {"id": execution.id, "priority": execution.priority,
             "submitted_at": execution.submitted_at},
        )
        return int(row["ahead"]) + 1 if row else 1

    async def has_queued_above(self, priority: int, now: float,
                               match: ClaimMatch = _ANY_WORKER) -> bool:
        """Whether an execution more urgent than `priority` is ready to be claimed by a
        worker that brings `match` (its GPU type)."""
        row = await self._db.fetch_one(self._sql["queued_above"], {
            "priority": priority, "now": now,
            "gpu_pattern": match.params()["gpu_pattern"]})
        return row is not None

    async def events(self, execution_id: str) -> list[LogEntry]:
        rows = await self._db.fetch_all(
            self._sql["events_for_execution"], {"execution_id": execution_id}
        )
        return [LogEntry.from_row(row) for row in rows]

    async def outputs(self, execution_id: str) -> list[OutputRecord]:
        rows = await self._db.fetch_all(
            self._sql["outputs_for_execution"], {"execution_id": execution_id}
        )
        return [OutputRecord.from_row(row) for row in rows]

    async def average_processing_time(self, signature: str | None) -> float | None:
        row = await self._db.fetch_one(
            self._sql["average_processing_time"], {"signature": signature}
        )
        if not row or not row["samples"]:
            return None
        return float(row["seconds"])

    async def queue_totals(self) -> dict[str, int]:
        rows = await self._db.fetch_all(self._sql["queue_totals"])
        return {str(row["status"]): int(row["count"]) for row in rows}

    async def queue_breakdown(self, now: float) -> list[tuple[int, int, float]]:
        """(priority, queued count, mean wait so far) per priority, most urgent first."""
        rows = await self._db.fetch_all(self._sql["queue_breakdown"], {"now": now})
        return [(int(r["priority"]), int(r["count"]), float(r["avg_wait"] or 0)) for r in rows]

    async def recent_averages(self, since: float) -> tuple[float | None, float | None]:
        """Mean wait (submit to start) and processing time of executions since `since`."""
        wait = await self._db.fetch_one(self._sql["recent_wait_time"], {"since": since})
        work = await self._db.fetch_one(self._sql["recent_processing_time"], {"since": since})
        return (None if not wait or wait["seconds"] is None else float(wait["seconds"]),
                None if not work or work["seconds"] is None else float(work["seconds"]))

    async def live_workers(self, since: float) -> list[WorkerState]:
        rows = await self._db.fetch_all(self._sql["live_workers"], {"since": since})
        return [WorkerState(row["id"], row["state"], row["gpu_type"],
                            json.loads(row["system_stats"]) if row["system_stats"] else None,
                            None) for row in rows]

    async def metric_counts(self) -> dict[str, dict[str, int]]:
        """Counts for /metrics: executions by status, queue depth by priority, webhook
        attempts by outcome, model loads."""
        async def pairs(query: str, key: str) -> dict[str, int]:
            rows = await self._db.fetch_all(self._sql[query])
            return {str(row[key]): int(row["count"]) for row in rows}

        loads = await self._db.fetch_one(self._sql["model_loads"])
        return {
            "executions": await pairs("executions_by_status", "status"),
            "queue_depth": await pairs("queue_depth_by_priority", "priority"),
            "webhook_deliveries": await pairs("webhook_deliveries_by_outcome", "outcome"),
            "model_loads": {"all": int(loads["count"]) if loads else 0},
        }

    async def completed_durations(self) -> list[tuple[float, float]]:
        """(queue wait, processing time) of every completed execution."""
        rows = await self._db.fetch_all(self._sql["completed_durations"])
        return [(float(row["wait"]), float(row["work"])) for row in rows]

    async def live_worker_count(self, since: float) -> int:
        row = await self._db.fetch_one(self._sql["live_worker_count"], {"since": since})
        return int(row["live"]) if row else 0

    # ------------------------------------------------------------------ cancelling

    async def cancel(
        self, execution_id: str, api_key_id: str, reason: str, now: float
    ) -> ExecutionRecord | None:
        """Cancel a queued or processing execution; None if it was not cancellable."""
        try:
            async with self._db.transaction() as tx:
                # The log entry goes first: the status change is the last write of a
                # finishing transaction, so the event stream's `end` comes after it.
                await tx.execute(
                    self._sql["insert_event"],
                    _event_params(execution_id, LogEntry(
                        now, "execution_cancelled", None, f"Execution cancelled ({reason})")),
                )
                row = await tx.fetch_one(
                    self._sql["cancel_execution"],
                    {"id": execution_id, "api_key_id": api_key_id, "reason": reason, "now": now},
                )
                if row is None:
                    raise _LeaseLost
                await self._notify(tx, CANCEL_CHANNEL, execution_id)
        except _LeaseLost:
            return None
        return ExecutionRecord.from_row(row)

    # ------------------------------------------------------------------ worker side

    async def claim_next(
        self, worker_id: str, lease_seconds: float, *, engine_prompt_id: str | None = None,
        resource_allocation: dict[str, Any] | None = None, match: ClaimMatch = _ANY_WORKER,
        now: float | None = None,
    ) -> ExecutionRecord | None:
        """One statement, atomic on its own: the row lock (PostgreSQL) or the write lock
        (SQLite) is taken and released within it, so no transaction round trips are needed.
        The worker may name the ComfyUI prompt id it will use, saving a write later.
        `match` carries its GPU type and warm models (GPU-type matching, model affinity);
        `now` is for simulations that run on their own clock."""
        now = time.time() if now is None else now
        params = {"worker_id": worker_id, "now": now, "lease_expires_at": now + lease_seconds,
                  "engine_prompt_id": engine_prompt_id,
                  "resource_allocation": _dumps(resource_allocation), **match.params()}
        if not match.warm_models:
            params = {name: value for name, value in params.items()
                      if name not in ("warm_models", "affinity_window", "affinity_max_wait")}
        query = "claim_next" if match.warm_models else "claim_next_in_order"
        row = await self._db.fetch_one(self._sql[query], params)
        return ExecutionRecord.from_row(row) if row else None

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
             "resource_allocation": _dumps(resource_allocation)},
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
                 "engine_metrics": _dumps(engine_metrics)},
            )
            if changed:
                await self._insert_events(tx, lease.execution_id, log)
                await tx.execute_many(self._sql["insert_output"],
                                      [output.params() for output in outputs])
                if webhook is not None:
                    await self.webhooks.add_event(tx, lease.execution_id,
                                                  "execution.progress", webhook)
        return changed == 1

    async def append_log(self, execution_id: str, log: Sequence[LogEntry]) -> None:
        async with self._db.transaction() as tx:
            await self._insert_events(tx, execution_id, log)

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
                  "engine_metrics": _dumps(engine_metrics)}
        if not outputs and not log:
            return await self._db.execute(self._sql["complete_execution"], params) == 1
        try:
            async with self._db.transaction() as tx:
                await tx.execute_many(self._sql["insert_output"],
                                      [output.params() for output in outputs])
                await self._insert_events(tx, lease.execution_id, log)
                if await tx.execute(self._sql["complete_execution"], params) != 1:
                    raise _LeaseLost
        except _LeaseLost:
            return False
        return True

    async def fail(
        self, lease: Lease, error: dict[str, Any], gpu_time: float | None,
        log: Sequence[LogEntry] = (), engine_metrics: dict[str, Any] | None = None,
    ) -> bool:
        return await self._finish_attempt(
            "fail_execution", lease,
            {"now": time.time(), "error": _dumps(error), "gpu_time": gpu_time,
             "engine_metrics": _dumps(engine_metrics)}, log,
        )

    async def requeue(
        self, lease: Lease, error: dict[str, Any], not_before: float,
        log: Sequence[LogEntry] = (),
    ) -> bool:
        return await self._finish_attempt(
            "requeue_execution", lease, {"error": _dumps(error), "not_before": not_before}, log,
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
                "rescue_fail", lease, {"now": now, "error": _dumps(error)}, log)
        return await self._finish_attempt(
            "rescue_requeue", lease,
            {"now": now, "not_before": retry_at, "error": _dumps(error)}, log)

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
                await self._insert_events(tx, lease.execution_id, log)
                if await tx.execute(self._sql[query], {**lease.params(), **params}) != 1:
                    raise _LeaseLost
                if wake_workers:
                    await self._notify(tx, WORK_CHANNEL, lease.execution_id)
        except _LeaseLost:
            return False
        return True

    async def _insert_events(
        self, tx: Session, execution_id: str, log: Sequence[LogEntry]
    ) -> None:
        await tx.execute_many(self._sql["insert_event"],
                              [_event_params(execution_id, entry) for entry in log])

    # ------------------------------------------------------------------ workers and catalogs

    async def publish_catalog(self, worker_id: str, object_info_json: str
                              ) -> tuple[str, str | None]:
        """Record a worker's /object_info (stored once per distinct content): the new hash,
        and the one it replaces."""
        digest = hashlib.sha256(object_info_json.encode()).hexdigest()
        before = await self._db.fetch_one(self._sql["worker_catalog_hash"],
                                          {"worker_id": worker_id})
        previous = before["catalog_hash"] if before else None
        async with self._db.transaction() as tx:
            await tx.execute(self._sql["insert_catalog"],
                             {"hash": digest, "object_info": object_info_json, "now": time.time()})
            await tx.execute(self._sql["set_worker_catalog"],
                             {"hash": digest, "worker_id": worker_id})
        return digest, previous

    async def swap_state(self, key: str, old: str, new: str) -> bool:
        """Compare-and-set a shared fact; True for the one process whose update won."""
        return await self._db.execute(self._sql["compare_and_set_state"],
                                      {"key": key, "old": old, "new": new}) == 1

    async def state(self, key: str) -> str | None:
        row = await self._db.fetch_one(self._sql["get_state"], {"key": key})
        return str(row["value"]) if row else None

    async def catalog_hashes(self, since: float) -> set[str]:
        """The catalogs of the workers heard from since `since`."""
        rows = await self._db.fetch_all(self._sql["catalog_hashes_since"], {"since": since})
        return {str(row["hash"]) for row in rows}

    async def catalog(self, digest: str) -> dict[str, Any] | None:
        row = await self._db.fetch_one(self._sql["catalog_by_hash"], {"hash": digest})
        return json.loads(row["object_info"]) if row else None

    async def heartbeat_worker(self, worker: WorkerState) -> None:
        await self._db.execute(
            self._sql["upsert_worker"],
            {"id": worker.id, "now": time.time(), "state": worker.state,
             "gpu_type": worker.gpu_type, "system_stats": _dumps(worker.system_stats),
             "current_execution_id": worker.current_execution_id, "region": worker.region,
             "warm_models": json.dumps(sorted(worker.warm_models))},
        )


def _event_params(execution_id: str, entry: LogEntry) -> dict[str, Any]:
    return {
        "execution_id": execution_id, "at": entry.at, "event": entry.event,
        "node_id": entry.node_id, "message": entry.message, "details": _dumps(entry.details),
    }
