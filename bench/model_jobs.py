"""Eight concurrent jobs on one new model against one job alone, end to end on a real
ComfyUI (issue #15's `bench.models` figure, at the level of jobs).

    python -m bench.model_jobs [--runs 3] [--jobs 8]

One service (embedded worker, its ComfyUI on the CPU) whose tier may fetch from a loopback
https server (a test CA made here) that serves a copy of the tiny SD1.5 checkpoint, its
bytes relabelled for each measurement so that the cache has never seen it. Each run times,
from the first submit to the last job finished:
- **one**: one job (1 sampler step) naming a new https checkpoint, pinned by sha256;
- **eight**: `--jobs` jobs submitted at once, all naming one other new checkpoint;
- **cached**: one job on a checkpoint already in the cache (the job without a download).
The server's request count proves one download per new file. Prints each run and the
medians, and `eight` as a multiple of `one` (the worker hands ComfyUI a job plus its
prefetch, so the cached jobs after the first overlap with our bookkeeping).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from comfy_serverless.engine.comfyui.installer import (
    EngineLayout,
    build_tiny_checkpoint,
    install_engine,
)
from comfy_serverless.settings import Settings
from comfy_serverless.testing import LocalService
from tests.model_files import model_source_service_env, relabelled_safetensors, sha_of_file
from tests.range_server import RangeServer, range_server
from tests.tls_server import make_certificates
from workloads.workflows import TINY_CHECKPOINT, tiny_sd15


@contextmanager
def _service(folder: Path, ca_bundle: Path, layout: EngineLayout) -> Iterator[LocalService]:
    env = model_source_service_env(folder / "models", folder / "tiers.json", ca_bundle,
                                   {"enterprise": ["127.0.0.1"]})
    with LocalService.start(folder / "data", layout.root, extra_env=env) as service:
        yield service


class _Jobs:
    def __init__(self, api: httpx.AsyncClient, server: RangeServer, layout: EngineLayout,
                 folder: Path) -> None:
        self._api, self._server, self._layout, self._folder = api, server, layout, folder
        self._seed = 0

    def new_source(self, label: str) -> tuple[str, str]:
        """A URL serving a checkpoint no cache has seen, and its sha256."""
        copy = relabelled_safetensors(self._layout.models_dir / "checkpoints" / TINY_CHECKPOINT,
                                      self._folder / f"{label}.safetensors", label)
        return self._server.serve(f"/ckpt/{label}.safetensors", copy), sha_of_file(copy)

    def hits(self, url: str) -> int:
        return self._server.hits["/ckpt/" + url.rsplit("/", 1)[1]]

    async def timed(self, url: str, sha256: str, count: int) -> float:
        """Seconds from the first submit to the last of `count` jobs finished."""
        started = time.perf_counter()
        ids = await asyncio.gather(*(self._submit(url, sha256) for _ in range(count)))
        for execution_id in ids:
            await self._finished(execution_id)
        return time.perf_counter() - started

    async def _submit(self, url: str, sha256: str) -> str:
        self._seed += 1
        workflow: dict[str, Any] = tiny_sd15(self._seed, steps=1)
        workflow["4"]["inputs"]["ckpt_name"] = url
        response = await self._api.post("/v1/workflows/execute", json={
            "workflow": workflow, "model_sources": {url: {"sha256": sha256}}})
        response.raise_for_status()
        return str(response.json()["execution_id"])

    async def _finished(self, execution_id: str) -> None:
        while True:
            body = (await self._api.get(f"/v1/workflows/{execution_id}/status")).json()
            if body["status"] == "completed":
                return
            if body["status"] not in ("queued", "processing"):
                raise SystemExit(f"{execution_id} {body['status']}: {body.get('error')}")
            await asyncio.sleep(0.05)


async def _one_run(jobs: _Jobs, run: int, count: int) -> tuple[float, float, float]:
    one_url, one_sha = jobs.new_source(f"one-{run}")
    one = await jobs.timed(one_url, one_sha, 1)
    many_url, many_sha = jobs.new_source(f"many-{run}")
    many = await jobs.timed(many_url, many_sha, count)
    cached = await jobs.timed(one_url, one_sha, 1)
    downloads = (jobs.hits(one_url), jobs.hits(many_url))
    if downloads != (1, 1):
        raise SystemExit(f"expected one download per new file, the server saw {downloads}")
    return one, many, cached


async def _run(args: argparse.Namespace) -> None:
    layout = install_engine(EngineLayout(Settings().engine_dir))
    build_tiny_checkpoint(layout)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        certificates = make_certificates(folder / "tls")
        with range_server(certificates) as server, \
                _service(folder, certificates.ca_bundle, layout) as service:
            headers = {"Authorization": f"Bearer {service.new_unthrottled_key()}"}
            async with httpx.AsyncClient(base_url=service.base_url, headers=headers,
                                         timeout=120) as api:
                jobs = _Jobs(api, server, layout, folder)
                results = []
                for run in range(args.runs):
                    results.append(await _one_run(jobs, run, args.jobs))
                    one, many, cached = results[-1]
                    print(f"run {run + 1}: one {one:6.2f} s   {args.jobs} at once "
                          f"{many:6.2f} s   cached job {cached:5.2f} s   (one download each)",
                          flush=True)
    one, many, cached = (statistics.median(column) for column in zip(*results, strict=True))
    print(f"median of {args.runs}: one job {one:.2f} s, {args.jobs} jobs {many:.2f} s "
          f"({many / one:.2f}x one), a job on a cached model {cached:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=8)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
