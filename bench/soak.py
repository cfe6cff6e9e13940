"""Memory over time: N trivial jobs through the embedded service, RSS of both processes.

    python -m bench.soak [--jobs 2000] [--clients 4] [--every N]

Starts `comfy-serverless serve` (SQLite, embedded worker, its own ComfyUI child) in a fresh
data folder, then `--clients` clients each submit EmptyImage → ImageInvert → SaveImage with
a fresh colour and wait for its results (`GET …/results?wait=30`), until `--jobs` have
completed. Every `--every` jobs (default: a tenth of them) it prints the resident set size
of the service process and of ComfyUI, read from /proc. What should stay flat after the
first few thousand jobs: both (issue #18, target 7: ≤ 10 MB growth after 10,000 jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from pathlib import Path

import httpx

from comfy_serverless.engine.comfyui.installer import EngineLayout, install_engine
from comfy_serverless.settings import Settings
from comfy_serverless.testing import LocalService
from workloads.workflows import inverted_image


def rss_mb(pid: int | None) -> float:
    """The process's resident set size in MB (VmRSS), or NaN when it is gone."""
    if pid is None:
        return float("nan")
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Soak:
    def __init__(self, service: LocalService, key: str, jobs: int, every: int) -> None:
        self._service = service
        self._http = httpx.AsyncClient(base_url=service.base_url, timeout=60,
                                       headers={"Authorization": f"Bearer {key}"})
        self._jobs, self._every = jobs, every
        self._started = itertools.count()
        self._colors = itertools.count(1)
        self._done = 0
        self._began = time.monotonic()

    async def run(self, clients: int) -> None:
        self._report()
        try:
            await asyncio.gather(*(self._client() for _ in range(clients)))
        finally:
            await self._http.aclose()

    async def _client(self) -> None:
        while next(self._started) < self._jobs:
            await self._one_job()
            self._done += 1
            if self._done % self._every == 0:
                self._report()

    async def _one_job(self) -> None:
        workflow = inverted_image(next(self._colors) % 0xFFFFFF)
        accepted = await self._http.post("/v1/workflows/execute", json={"workflow": workflow})
        assert accepted.status_code == 202, accepted.text
        execution_id = accepted.json()["execution_id"]
        results = await self._http.get(f"/v1/workflows/{execution_id}/results",
                                       params={"wait": 30})
        assert results.status_code == 200, results.text

    def _report(self) -> None:
        service_mb = rss_mb(self._service.process.pid)
        comfyui_mb = rss_mb(self._service.comfyui_pid())
        elapsed = time.monotonic() - self._began
        print(f"{self._done:>7} jobs  {elapsed:7.1f} s   service {service_mb:7.1f} MB   "
              f"ComfyUI {comfyui_mb:7.1f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--every", type=int, default=None,
                        help="print the RSS every N jobs (default: jobs / 10)")
    args = parser.parse_args()
    layout = install_engine(EngineLayout(Settings().engine_dir))
    with tempfile.TemporaryDirectory() as data_dir, \
            LocalService.start(Path(data_dir), layout.root) as service:
        key = service.new_unthrottled_key()
        print(f"soak: {args.jobs} trivial jobs, {args.clients} clients, SQLite, embedded worker")
        soak = Soak(service, key, args.jobs, args.every or max(1, args.jobs // 10))
        asyncio.run(soak.run(args.clients))


if __name__ == "__main__":
    main()
