"""Submits and status reads over HTTP on PostgreSQL, driven by wrk, while simulated workers
drain the queue (issue #18, target 3).

    python -m bench.http_load [--processes 1 2] [--runs 3] [--duration 10] [--connections 64]

For each API process count: `comfy-serverless serve --processes N` (no embedded worker,
Redis for the shared rate limits) on a scratch PostgreSQL schema, an unthrottled key, and
a drainer process whose simulated workers claim and complete what is submitted, so the
queue stays shallow as it would under a fleet. Then, each run:
1. wrk (Debian's package; C, one event loop per thread) sends accepted submits of a small
   valid workflow, each one authenticated, rate-limited, validated and admitted in its own
   transaction;
2. wrk reads the statuses of executions it submitted, round-robin.
A Lua `done` hook prints wrk's own figures as JSON: requests, duration, latency percentiles
and every answer that was not 2xx (which fails the bench: it measures accepted requests).
Prints each run and the medians. Targets: ≥ 1,000 submits/s, ≥ 3,000 status reads/s, p99
under 50 ms. wrk must be installed (`apt-get install wrk`); the bench fails without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfy_serverless.store.records import ProgressSnapshot
from comfy_serverless.store.store import Store
from comfy_serverless.testing import LocalService, scratch_postgres_schema
from workloads.workflows import inverted_image

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
DONE = ProgressSnapshot(1.0, None, None, None, None, 3)

_REPORT = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "not_2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def _submit_script(key: str) -> str:
    body = json.dumps({"workflow": inverted_image(1)})
    return f"""
wrk.method = "POST"
wrk.body = {json.dumps(body)}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
{_REPORT}"""


def _read_script(key: str, ids_file: Path) -> str:
    return f"""
local paths = {{}}
for id in io.lines("{ids_file}") do paths[#paths + 1] = "/v1/workflows/" .. id .. "/status" end
local next_index = math.random(#paths)
wrk.headers["Authorization"] = "Bearer {key}"
request = function()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index])
end
{_REPORT}"""


@dataclass
class WrkRun:
    rate: float
    p50_ms: float
    p99_ms: float

    def __str__(self) -> str:
        return f"{self.rate:7.0f} /s  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms"


def _wrk(url: str, script: Path, args: argparse.Namespace) -> WrkRun:
    finished = subprocess.run(
        ["wrk", "--threads", str(args.threads), "--connections", str(args.connections),
         "--duration", f"{args.duration}s", "--timeout", "10s", "--script", str(script), url],
        capture_output=True, text=True, check=True)
    line = next(line for line in finished.stdout.splitlines() if line.startswith("WRK "))
    figures: dict[str, Any] = json.loads(line[4:])
    if figures["not_2xx"] or figures["socket_errors"]:
        raise SystemExit(f"wrk saw answers that were not 2xx or socket errors:\n"
                         f"{finished.stdout}")
    return WrkRun(rate=figures["requests"] / (figures["duration_us"] / 1e6),
                  p50_ms=figures["p50_us"] / 1000, p99_ms=figures["p99_us"] / 1000)


async def _drain(database_url: str, workers: int, stop_after: float) -> None:
    """Simulated workers: claim and complete whatever is queued, until `stop_after` (a
    time.time()) has passed."""
    store = await Store.open(database_url)

    async def worker(name: str) -> None:
        while time.time() < stop_after:
            execution = await store.claims.claim_next(name, 30)
            if execution is None:
                await asyncio.sleep(0.005)
            else:
                await store.claims.complete(execution.lease, [], DONE, 0.0)

    try:
        await asyncio.gather(*(worker(f"sim-{index}") for index in range(workers)))
    finally:
        await store.close()


def _drainer(database_url: str, workers: int, stop_after: float) -> None:
    asyncio.run(_drain(database_url, workers, stop_after))


async def _queued(database_url: str) -> int:
    """The queue's depth: whether the drainers kept up (a deep queue makes the tier's
    bounded count at each submit longer, up to the tier's max_queue_size)."""
    store = await Store.open(database_url)
    try:
        row = await store.connector.fetch_one(
            "SELECT COUNT(*) AS n FROM executions WHERE status = 'queued'")
        return int(row["n"]) if row else 0
    finally:
        await store.close()


async def _submitted_ids(database_url: str, limit: int) -> list[str]:
    store = await Store.open(database_url)
    try:
        rows = await store.connector.fetch_all(
            "SELECT id FROM executions ORDER BY submitted_at DESC LIMIT :limit",
            {"limit": limit})
        return [str(row["id"]) for row in rows]
    finally:
        await store.close()


async def _one_count(processes: int, args: argparse.Namespace) -> tuple[list[WrkRun],
                                                                        list[WrkRun]]:
    submits: list[WrkRun] = []
    reads: list[WrkRun] = []
    async with scratch_postgres_schema(args.postgres, "bench") as database_url:
        env = {"DATABASE_URL": database_url, "REDIS_URL": args.redis,
               "COMFY_SERVERLESS_API_PROCESSES": str(processes),
               "COMFY_SERVERLESS_EMBEDDED_WORKER": "false",
               "COMFY_SERVERLESS_WEBHOOK_DISPATCHER": "false"}
        with tempfile.TemporaryDirectory() as folder, \
                LocalService.start(Path(folder) / "data", Path(folder) / "no-engine",
                                   extra_env=env) as service:
            key = service.new_unthrottled_key()
            scripts = Path(folder)
            (scripts / "submit.lua").write_text(_submit_script(key))
            drain_for = args.runs * (2 * args.duration + 30) + 60
            drainer = multiprocessing.get_context("spawn").Process(
                target=_drainer, args=(database_url, args.drainers, time.time() + drain_for))
            drainer.start()
            try:
                for _ in range(args.runs):
                    submits.append(_wrk(service.base_url + "/v1/workflows/execute",
                                        scripts / "submit.lua", args))
                    depth = await _queued(database_url)
                    ids = await _submitted_ids(database_url, 5000)
                    (scripts / "ids.txt").write_text("\n".join(ids) + "\n")
                    (scripts / "read.lua").write_text(_read_script(key, scripts / "ids.txt"))
                    reads.append(_wrk(service.base_url, scripts / "read.lua", args))
                    print(f"  {processes} process(es): submits {submits[-1]}   "
                          f"status reads {reads[-1]}   (queued after the submits: {depth})",
                          flush=True)
            finally:
                drainer.terminate()
                drainer.join()
    return submits, reads


def _median(runs: list[WrkRun]) -> WrkRun:
    return WrkRun(rate=statistics.median(run.rate for run in runs),
                  p50_ms=statistics.median(run.p50_ms for run in runs),
                  p99_ms=statistics.median(run.p99_ms for run in runs))


async def _run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench.http_load needs wrk: apt-get install wrk")
    print(f"wrk: {args.threads} threads, {args.connections} connections, {args.duration} s "
          f"per run; {args.drainers} simulated workers draining; PostgreSQL + Redis")
    for processes in args.processes:
        submits, reads = await _one_count(processes, args)
        print(f"{processes} API process(es), median of {args.runs}: submits "
              f"{_median(submits)}   status reads {_median(reads)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--drainers", type=int, default=20)
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--redis", default=REDIS)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
