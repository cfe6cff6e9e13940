"""Model loads with model affinity vs first-in-first-out, through the real claim query.

    python -m bench.affinity [--jobs 400] [--seed 7] [--stores sqlite,postgres]

A simulated fleet of 4 workers and 8 checkpoints. Each job loads one checkpoint, drawn
from a Zipf distribution (s = 1.1); jobs arrive as a seeded Poisson stream, the same for
both policies. Each worker's ComfyUI holds the checkpoint of its latest job (its classic
cache); a job whose checkpoint is not held pays a load. Time is simulated (a job runs
`--run` seconds plus `--load` seconds when it loads), but every claim is the store's real
`claim_next` statement against a real SQLite file or PostgreSQL schema, given the simulated
clock: FIFO is `affinity_window=1`; affinity is the default window of 8. An idle worker is
woken at each arrival in a seeded random order, as NOTIFY wakes them all.

Prints, per store and policy: model loads, their share of jobs, the mean and worst wait
(submit to claim) and the simulated time to drain the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import random
import statistics
import time
from dataclasses import dataclass, field

from bench.queue import DONE, database
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import ClaimMatch, NewExecution
from comfy_serverless.store.store import Store
from workloads.workflows import tiny_sd15

WORKERS = 4
CHECKPOINTS = [f"checkpoint_{index}.safetensors" for index in range(8)]
ZIPF_S = 1.1


@dataclass(frozen=True)
class Job:
    arrival: float
    checkpoint: str


@dataclass
class SimulatedWorker:
    id: str
    warm: frozenset[str] = frozenset()
    busy: bool = False


@dataclass
class Tally:
    loads: int = 0
    waits: list[float] = field(default_factory=list)
    finished_at: float = 0.0


def job_stream(jobs: int, rate: float, seed: int) -> list[Job]:
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** ZIPF_S for rank in range(len(CHECKPOINTS))]
    arrival, stream = 0.0, []
    for _ in range(jobs):
        arrival += rng.expovariate(rate)
        stream.append(Job(arrival, rng.choices(CHECKPOINTS, weights)[0]))
    return stream


class Simulation:
    def __init__(self, store: Store, key_id: str, window: int, args: argparse.Namespace
                 ) -> None:
        self._store = store
        self._key_id = key_id
        self._window = window
        self._args = args
        self._epoch = time.time()
        self._rng = random.Random(args.seed + 1)
        self._events: list[tuple[float, int, str, int]] = []
        self._sequence = 0
        self.workers = [SimulatedWorker(f"sim-{index}") for index in range(WORKERS)]
        self.tally = Tally()

    def _at(self, when: float, kind: str, index: int) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (when, self._sequence, kind, index))

    async def run(self, stream: list[Job]) -> Tally:
        for index, job in enumerate(stream):
            self._at(job.arrival, "arrival", index)
        while self._events:
            now, _, kind, index = heapq.heappop(self._events)
            if kind == "arrival":
                await self._submit(stream[index], now)
                await self._wake_idle(now)
            else:
                self.workers[index].busy = False
                await self._claim(self.workers[index], now)
        return self.tally

    async def _submit(self, job: Job, now: float) -> None:
        workflow = tiny_sd15(0)
        workflow["4"]["inputs"]["ckpt_name"] = job.checkpoint
        await self._store.executions.create_execution(NewExecution(
            id=new_execution_id(), api_key_id=self._key_id, priority=5, workflow=workflow,
            options=ExecutionOptions(), signature="bench", webhook_url=None, client_id=None,
            submitted_at=self._epoch + now, max_attempts=1, total_nodes=len(workflow),
            required_models=(job.checkpoint,)))

    async def _wake_idle(self, now: float) -> None:
        idle = [worker for worker in self.workers if not worker.busy]
        self._rng.shuffle(idle)
        for worker in idle:
            if not await self._claim(worker, now):
                return

    async def _claim(self, worker: SimulatedWorker, now: float) -> bool:
        match = ClaimMatch(warm_models=worker.warm, affinity_window=self._window,
                           affinity_max_wait=self._args.max_wait)
        execution = await self._store.claims.claim_next(worker.id, 3600, match=match,
                                                        now=self._epoch + now)
        if execution is None:
            return False
        checkpoint = (execution.required_models or [""])[0]
        loads = checkpoint not in worker.warm
        self.tally.loads += loads
        self.tally.waits.append(now - (execution.submitted_at - self._epoch))
        worker.warm, worker.busy = frozenset({checkpoint}), True
        finish = now + self._args.run + (self._args.load if loads else 0.0)
        self.tally.finished_at = max(self.tally.finished_at, finish)
        assert await self._store.claims.complete(execution.lease, [], DONE, 0.0)
        self._at(finish, "finish", self.workers.index(worker))
        return True


async def simulate(kind: str, window: int, stream: list[Job], args: argparse.Namespace
                   ) -> Tally:
    async with database(kind) as url:
        store = await Store.open(url)
        try:
            await store.migrate()
            key = issue_key("secret", "basic").record
            await store.access.create_api_key(key)
            return await Simulation(store, key.id, window, args).run(stream)
        finally:
            await store.close()


def _row(kind: str, policy: str, tally: Tally, jobs: int) -> str:
    return (f"{kind:<9}{policy:<10}{tally.loads:>6}{tally.loads / jobs:>9.0%}"
            f"{statistics.fmean(tally.waits):>11.1f}{max(tally.waits):>10.1f}"
            f"{tally.finished_at:>12.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=0.8, help="arrivals per second")
    parser.add_argument("--run", type=float, default=3.0, help="seconds a job runs")
    parser.add_argument("--load", type=float, default=4.0, help="seconds a model load takes")
    parser.add_argument("--window", type=int, default=8, help="affinity_window")
    parser.add_argument("--max-wait", type=float, default=30.0, help="affinity_max_wait")
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    stream = job_stream(args.jobs, args.rate, args.seed)
    print(f"{WORKERS} workers, {len(CHECKPOINTS)} checkpoints (Zipf s={ZIPF_S}), {args.jobs} "
          f"jobs at {args.rate}/s, run {args.run}s + load {args.load}s, seed {args.seed}")
    print(f"{'store':<9}{'policy':<10}{'loads':>6}{'share':>9}{'mean wait':>11}"
          f"{'max wait':>10}{'drained at':>12}")
    for kind in args.stores.split(","):
        fifo = await simulate(kind, 1, stream, args)
        affinity = await simulate(kind, args.window, stream, args)
        print(_row(kind, "fifo", fifo, args.jobs))
        print(_row(kind, "affinity", affinity, args.jobs))
        print(f"{kind:<9}loads with affinity / FIFO: {affinity.loads / fifo.loads:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
