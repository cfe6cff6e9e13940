"""What the event stream's triggers (migration 0015) add to the store writes of one job.

    python -m bench.stream_writes [--executions 150]

One execution's writes, as a worker makes them for a sampler job: submit, claim, five
progress writes with a log entry each, and completion with one output (16 stream rows). The
median time per execution is measured on SQLite and on PostgreSQL (127.0.0.1, a scratch
schema), once with the triggers and once after dropping them, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from comfy_serverless.store.records import ApiKeyRecord, LogEntry, ProgressSnapshot
from comfy_serverless.store.store import Store
from comfy_serverless.testing import scratch_postgres_schema
from tests.conformance.test_event_stream_store import _output
from workloads.rows import add_execution, add_key

POSTGRES = "postgresql://127.0.0.1:5432/test"
_TRIGGERS = {"executions": ("execution_stream_queued", "execution_stream_status",
                            "execution_stream_progress"),
             "execution_events": ("execution_stream_log",), "outputs": ("execution_stream_output",)}


async def _drop_triggers(store: Store) -> None:
    for table, names in _TRIGGERS.items():
        for name in names:
            suffix = f" ON {table}" if store.dialect == "postgres" else ""
            await store.connector.execute(f"DROP TRIGGER {name}{suffix}")  # a bench-only change


async def _one_execution(store: Store, key: ApiKeyRecord) -> float:
    started = time.perf_counter()
    execution_id = await add_execution(store, key)
    claimed = await store.claims.claim_next("bench-worker", 30)
    assert claimed is not None
    for step in range(1, 6):
        snapshot = ProgressSnapshot(step / 6, "KSampler", "3", step, 5, 0)
        await store.claims.record_progress(claimed.lease, snapshot,
                                           [LogEntry(time.time(), "step", "3", f"step {step}")])
    done = ProgressSnapshot(1.0, None, None, 5, 5, 1)
    assert await store.claims.complete(claimed.lease, [_output(execution_id, 1)], done, 1.0)
    return time.perf_counter() - started


async def _median_ms(store: Store, executions: int, *, triggers: bool) -> float:
    await store.migrate()
    if not triggers:
        await _drop_triggers(store)
    key = await add_key(store)
    for _ in range(20):  # warm-up
        await _one_execution(store, key)
    times = [await _one_execution(store, key) for _ in range(executions)]
    await store.close()
    return statistics.median(times) * 1000


async def _measure(executions: int) -> None:
    for triggers in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            store = await Store.open(f"sqlite:///{folder}/bench.db")
            sqlite = await _median_ms(store, executions, triggers=triggers)
        async with scratch_postgres_schema(POSTGRES, "bench") as url:
            postgres = await _median_ms(await Store.open(url), executions, triggers=triggers)
        label = "with" if triggers else "without"
        print(f"{label:>7} stream triggers: SQLite {sqlite:.2f} ms, PostgreSQL {postgres:.2f} ms"
              " per execution (median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=150)
    asyncio.run(_measure(parser.parse_args().executions))


if __name__ == "__main__":
    main()
