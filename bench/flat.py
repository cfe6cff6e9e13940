"""Flat in the queue and in history (issue #18, targets 4 and 5): the store calls of the
request paths at a shallow and a deep queue, and with an empty and a long history.

    python -m bench.flat [--queued 100000] [--finished 1000000] [--runs 3] [--repeat 100]
                         [--async-commit]

On PostgreSQL (127.0.0.1, a scratch schema per scenario). Three scenarios, each seeded once
with INSERT ... SELECT generate_series (tests/conformance/seeding.py) and ANALYZEd:
- base: 100 queued, no finished execution;
- deep queue: --queued queued, no finished execution;
- long history: 100 queued, --finished finished executions (one log entry each).
Measured in --runs rounds that alternate between the scenarios, --repeat calls per round
(a scrape or a queue status --repeat / 5): a status read (execution by id and key, queue
position) of the execution at the back of the queue, its queue position alone, a submit, a
claim, a /metrics scrape (its counts and histograms) and a queue status (totals, recent
averages, breakdown). Prints the median of each round, the median of the rounds, each
scenario's ratio to base, and the WAL written per call (what a commit must flush: a
measure the CPU's speed does not change).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.queue.housekeeping import Housekeeping
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import ApiKeyRecord, ExecutionRecord, NewExecution
from comfy_serverless.store.store import Store
from comfy_serverless.testing import scratch_postgres_schema
from tests.conformance.seeding import seed_finished, seed_queued, settle
from workloads.rows import GRAPH, add_execution, add_key

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
BASE_QUEUED = 100
OPERATIONS = ("status", "queue_position", "submit", "claim", "metrics", "queue_status")
_SLOW_OPERATIONS = frozenset({"metrics", "queue_status"})
_WARM_UP_CALLS = 10


@dataclass(frozen=True)
class Scenario:
    name: str
    queued: int
    finished: int


@dataclass(frozen=True)
class Measured:
    """One round of one operation: the median time (ms) and WAL written per call (bytes;
    the warm-up calls included, a figure that does not depend on the CPU's speed)."""

    median_ms: float
    wal_bytes: float


@dataclass
class Subject:
    """What the operations act on: the store, a key, and the execution at the back."""

    store: Store
    key: ApiKeyRecord
    last: ExecutionRecord


def _new_execution(key: ApiKeyRecord) -> NewExecution:
    return NewExecution(
        id=new_execution_id(), api_key_id=key.id, priority=5, workflow=GRAPH,
        options=ExecutionOptions(), signature="sig", webhook_url=None, client_id=None,
        submitted_at=time.time(), max_attempts=1, total_nodes=1)


async def _status(subject: Subject) -> None:
    found = await subject.store.executions.execution_for_key(subject.last.id, subject.key.id)
    assert found is not None
    await subject.store.executions.queue_position(found)


async def _queue_position(subject: Subject) -> None:
    await subject.store.executions.queue_position(subject.last)


async def _submit(subject: Subject) -> None:
    await subject.store.executions.create_execution(_new_execution(subject.key))


async def _claim(subject: Subject) -> None:
    assert await subject.store.claims.claim_next("bench-worker", 30) is not None


async def _metrics(subject: Subject) -> None:
    await subject.store.metrics.metric_counts()
    await subject.store.metrics.duration_histograms()


async def _queue_status(subject: Subject) -> None:
    now = time.time()
    await subject.store.metrics.queue_totals()
    await subject.store.metrics.recent_averages(now - 3600)
    await subject.store.metrics.queue_breakdown(now)


_CALLS: dict[str, Callable[[Subject], Awaitable[None]]] = {
    "status": _status, "queue_position": _queue_position, "submit": _submit,
    "claim": _claim, "metrics": _metrics, "queue_status": _queue_status}


async def _median_ms(subject: Subject, operation: str, repeat: int) -> tuple[float, int]:
    """The median of `repeat` calls (a fifth of them for the slow ones), after a few that
    are not measured (each pool connection prepares a statement on its first use), and how
    many calls were made in all."""
    call = _CALLS[operation]
    count = max(repeat // 5, 3) if operation in _SLOW_OPERATIONS else repeat
    for _ in range(_WARM_UP_CALLS):
        await call(subject)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await call(subject)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, count + _WARM_UP_CALLS


async def _prepared(store: Store, scenario: Scenario) -> Subject:
    await store.migrate()
    key = await add_key(store)
    await seed_finished(store, key.id, scenario.finished)
    await seed_queued(store, key.id, scenario.queued)
    # The measured execution: the last in claim order (lowest priority, newest).
    last_id = await add_execution(store, key, priority=0)
    await settle(store)
    await Housekeeping(store).run_once()
    last = await store.executions.execution(last_id)
    assert last is not None
    return Subject(store, key, last)


async def _wal_position(store: Store) -> int:
    row = await store.connector.fetch_one(
        "SELECT CAST(pg_current_wal_lsn() - CAST('0/0' AS pg_lsn) AS BIGINT) AS at")
    return int(row["at"]) if row else 0


async def _seeded(stack: AsyncExitStack, scenario: Scenario, async_commit: bool) -> Subject:
    url = await stack.enter_async_context(scratch_postgres_schema(POSTGRES))
    # A connection setting, not the server's: these sessions' commits return before the WAL
    # reaches the disk, which other work on this machine shares.
    store = await Store.open(url + "&synchronous_commit=off" if async_commit else url)
    stack.push_async_callback(store.close)
    seeding = time.perf_counter()
    subject = await _prepared(store, scenario)
    print(f"{scenario.name}: seeded {scenario.queued:,} queued and {scenario.finished:,} "
          f"finished in {time.perf_counter() - seeding:.0f} s", flush=True)
    return subject


async def _measure(scenarios: tuple[Scenario, ...], runs: int, repeat: int,
                   async_commit: bool) -> dict[str, dict[str, list[Measured]]]:
    """Per scenario and operation, each round's median and WAL per call. The scenarios'
    rounds alternate (round 1 of each, then round 2 of each...), so that the machine's
    load, which other work on it changes, weighs on every scenario alike."""
    results: dict[str, dict[str, list[Measured]]] = {
        scenario.name: {operation: [] for operation in OPERATIONS} for scenario in scenarios}
    async with AsyncExitStack() as stack:
        subjects = [await _seeded(stack, scenario, async_commit) for scenario in scenarios]
        for _ in range(runs):
            for scenario, subject in zip(scenarios, subjects, strict=True):
                for operation in OPERATIONS:
                    before = await _wal_position(subject.store)
                    median, calls = await _median_ms(subject, operation, repeat)
                    wal = (await _wal_position(subject.store) - before) / calls
                    results[scenario.name][operation].append(Measured(median, wal))
    return results


def _report(results: dict[str, dict[str, list[Measured]]]) -> None:
    base = results["base"]
    print(f"\n{'operation':<15}" + "".join(f"{name:>40}" for name in results))
    for operation in OPERATIONS:
        line = f"{operation:<15}"
        base_median = statistics.median(m.median_ms for m in base[operation])
        for scenario in results.values():
            rounds = scenario[operation]
            median = statistics.median(m.median_ms for m in rounds)
            wal = statistics.median(m.wal_bytes for m in rounds)
            each = "/".join(f"{m.median_ms:.2f}" for m in rounds)
            cell = f"{median:.3f} ms ({median / base_median:.2f}x) [{each}] {wal:.0f} B"
            line += f"{cell:>40}"
        print(line)
    print("\nmedian of the rounds' medians (ratio to base) [each round's median] "
          "WAL bytes per call")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--async-commit", action="store_true",
                        help="commits do not wait for the WAL flush: submit and claim then "
                             "time the statements' work, not the shared disk's")
    args = parser.parse_args()
    scenarios = (Scenario("base", BASE_QUEUED, 0),
                 Scenario(f"queue {args.queued:,}", args.queued, 0),
                 Scenario(f"history {args.finished:,}", BASE_QUEUED, args.finished))
    _report(await _measure(scenarios, args.runs, args.repeat, args.async_commit))


if __name__ == "__main__":
    asyncio.run(main())
