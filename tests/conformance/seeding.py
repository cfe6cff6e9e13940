"""Bulk rows on PostgreSQL for the EXPLAIN tests and bench.flat: finished executions (with
one log entry each) and queued ones, each set in one INSERT ... SELECT generate_series, with
the triggers off for speed (session_replication_role = replica, which the scratch database's
superuser may set), then the status tallies recounted, the tables vacuumed and analyzed,
and a checkpoint taken, so that what follows measures the requests, not the seeding."""

from __future__ import annotations

import time

from comfy_serverless.store.store import Store

DAY = 24 * 3600.0

_FINISHED = """
INSERT INTO executions (id, api_key_id, status, priority, requested_priority, workflow,
                        options, signature, submitted_at, started_at, finished_at,
                        total_nodes, max_attempts)
SELECT :prefix || g, :api_key_id, CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'completed' END,
       5, 5, '{}', '{}', 'sig' || (g % 50), t, t + 1, t + 3, 1, 1
FROM (SELECT g, CAST(:oldest AS DOUBLE PRECISION)
                + g * CAST(:spacing AS DOUBLE PRECISION) AS t
      FROM generate_series(1, CAST(:count AS INTEGER)) AS g) AS s
"""
_FINISHED_EVENTS = """
INSERT INTO execution_events (execution_id, at, event, message)
SELECT :prefix || g, CAST(:oldest AS DOUBLE PRECISION),
       CASE WHEN g % 100 = 0 THEN 'model_loaded' ELSE 'execution_completed' END, 'seeded'
FROM generate_series(1, CAST(:count AS INTEGER)) AS g
"""
_QUEUED = """
INSERT INTO executions (id, api_key_id, status, priority, requested_priority, workflow,
                        options, signature, submitted_at, total_nodes, max_attempts)
SELECT :prefix || g, :api_key_id, 'queued', 1 + g % 9, 1 + g % 9, '{}', '{}', 'sig',
       CAST(:oldest AS DOUBLE PRECISION) + g * 0.001, 1, 1
FROM generate_series(1, CAST(:count AS INTEGER)) AS g
"""
_RECOUNT = """
INSERT INTO execution_tallies (status, priority, count, submitted_ms_sum)
SELECT status, priority, COUNT(*), SUM(CAST(ROUND(submitted_at * 1000) AS BIGINT))
FROM executions GROUP BY status, priority
"""
_RECOUNT_FAILURES = """
INSERT INTO failure_tallies (error_code, count)
SELECT COALESCE(CAST(error AS jsonb) ->> 'error_code', 'UNKNOWN'), COUNT(*)
FROM executions WHERE status = 'failed' GROUP BY 1
"""


async def _recount_failures(store: Store) -> None:
    """The failure tallies (migration 0018, absent before it) from the failed rows."""
    tallied = await store.connector.fetch_one(
        "SELECT to_regclass('failure_tallies') IS NOT NULL AS present")
    if tallied and tallied["present"]:
        async with store.connector.transaction() as tx:
            await tx.execute("DELETE FROM failure_tally_deltas")
            await tx.execute("DELETE FROM failure_tallies")
            await tx.execute(_RECOUNT_FAILURES)


async def _insert(store: Store, sql: str, params: dict[str, object]) -> None:
    async with store.connector.transaction() as tx:
        await tx.execute("SET LOCAL session_replication_role = replica")
        await tx.execute(sql, params)


async def seed_finished(store: Store, api_key_id: str, count: int, *, prefix: str = "hist_",
                        days: float = 60.0) -> None:
    """`count` finished executions spread evenly over the last `days` (9 in 10 completed)."""
    params: dict[str, object] = {"prefix": prefix, "api_key_id": api_key_id, "count": count,
                                 "oldest": time.time() - days * DAY,
                                 "spacing": days * DAY / max(count, 1) * 0.999}
    await _insert(store, _FINISHED, params)
    await _insert(store, _FINISHED_EVENTS, {name: params[name]
                                            for name in ("prefix", "oldest", "count")})


async def seed_queued(store: Store, api_key_id: str, count: int, *, prefix: str = "q_") -> None:
    """`count` queued executions at priorities 1 to 9, submitted in the last minutes."""
    await _insert(store, _QUEUED, {"prefix": prefix, "api_key_id": api_key_id,
                                   "count": count, "oldest": time.time() - count * 0.001 - 60})


async def settle(store: Store) -> None:
    """Recount the status tallies (the seeding bypassed their triggers; a schema from before
    migration 0016, which bench.flat measures as the baseline, has none) and ANALYZE."""
    tallied = await store.connector.fetch_one(
        "SELECT to_regclass('execution_tallies') IS NOT NULL AS present")
    if tallied and tallied["present"]:
        async with store.connector.transaction() as tx:
            await tx.execute("DELETE FROM execution_tally_deltas")
            await tx.execute("DELETE FROM execution_tallies")
            await tx.execute(_RECOUNT)
            await tx.execute("DELETE FROM event_tally_deltas")
            await tx.execute(
                "UPDATE event_tallies SET count = (SELECT COUNT(*) FROM execution_events "
                "WHERE event = event_tallies.event)")
    await _recount_failures(store)
    for table in ("executions", "execution_events", "idempotency_keys"):
        # VACUUM too: autovacuum would otherwise work through the new rows while a
        # benchmark measures, and index-only scans need the visibility map it sets.
        await store.connector.execute(f"VACUUM ANALYZE {table}")
    await store.connector.execute("CHECKPOINT")
