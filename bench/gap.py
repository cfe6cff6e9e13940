"""The idle gap between consecutive jobs on one worker and its real ComfyUI.

    python -m bench.gap [--jobs 40]

The service starts on its embedded defaults; `--jobs` trivial workflows (EmptyImage →
ImageInvert → SaveImage, a new colour each) are queued at once, so the worker always has a
next job. ComfyUI records in each prompt's history when it started and when it succeeded
(`status.messages`, millisecond timestamps); the gap is the time from one prompt's success to
the next one's start: what the GPU spends idle between jobs. Target: ≤ 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from comfy_serverless.engine.comfyui.installer import EngineLayout, install_engine
from comfy_serverless.settings import Settings
from comfy_serverless.testing import LocalService
from workloads.workflows import inverted_image


def _timestamp(history: dict[str, Any], event: str) -> float:
    for name, data in history["status"]["messages"]:
        if name == event:
            return float(data["timestamp"]) / 1000
    raise LookupError(event)


async def _run(service: LocalService, key: str, jobs: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=service.base_url, headers=headers,
                                 timeout=60) as api:
        ids = []
        for index in range(jobs):
            body = {"workflow": inverted_image(1000 + index)}
            ids.append((await api.post("/v1/workflows/execute", json=body)).json()["execution_id"])
        for execution_id in ids:
            results = await api.get(f"/v1/workflows/{execution_id}/results", params={"wait": 60})
            assert results.status_code == 200, results.text
        prompts = [(await api.get(f"/v1/workflows/{i}/status")).json()["resource_allocation"][
            "engine_prompt_id"] for i in ids]
    async with httpx.AsyncClient(base_url=service.comfyui_url) as comfyui:
        histories = [(await comfyui.get(f"/history/{p}")).json()[p] for p in prompts]
    return [_timestamp(after, "execution_start") - _timestamp(before, "execution_success")
            for before, after in itertools.pairwise(histories)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    layout = install_engine(EngineLayout(Settings().engine_dir))
    with tempfile.TemporaryDirectory() as data_dir, \
            LocalService.start(Path(data_dir), layout.root, extra_env={
                # Its timestamps come from ComfyUI's history, which the worker drops.
                "COMFY_SERVERLESS_KEEP_ENGINE_HISTORY": "true"}) as service:
        gaps = asyncio.run(_run(service, service.new_unthrottled_key(), args.jobs))
    ordered = sorted(gaps)
    print(f"idle gap between consecutive jobs on one worker ({len(gaps)} gaps): "
          f"median {statistics.median(gaps) * 1000:.1f} ms   "
          f"p90 {ordered[int(len(ordered) * 0.9)] * 1000:.1f} ms   "
          f"max {ordered[-1] * 1000:.1f} ms   (target ≤ 10 ms)")


if __name__ == "__main__":
    main()
