"""Peak memory of the worker while it moves one large output into storage.

    python -m bench.outputs [--mb 200]

One process plays the worker's output collector for a finished prompt whose history lists
one file of `--mb` megabytes, four ways:

- **local folder → local storage**: ComfyUI's output folder on this machine (a supervised
  child): the file is renamed into storage;
- **/view → local storage**: a remote ComfyUI: streamed from `/view` into a spool file;
- **local folder → S3** and **/view → S3**: the same, then uploaded in parts to a real S3
  server (moto's server mode on loopback, in its own process).

`/view` is served by another process (Python's http.server), so only the collector's own
memory is measured. Before each run the process's peak RSS is reset (`/proc/self/clear_refs`);
the figure is the peak RSS during the run minus the RSS before it. A last row reads the file
whole, to show that the meter sees such a read. Target: ≤ 50 MB for 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.memory import reset_peak, status_kb
from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.storage.base import OutputStorage
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.router import StorageRouter
from comfy_serverless.storage.s3 import S3Storage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.options import ExecutionOptions, OutputOptions, StoredDestination
from comfy_serverless.store.records import ExecutionRecord, NewExecution
from comfy_serverless.testing import free_port
from comfy_serverless.testing_s3 import moto_server
from comfy_serverless.worker.outputs import OutputCollector

_BUCKET = "bench-outputs"
_CHUNK = 1 << 20




def _write_output(path: Path, megabytes: int) -> None:
    block = os.urandom(_CHUNK)
    with path.open("wb") as handle:
        for _ in range(megabytes):
            handle.write(block)


@contextlib.contextmanager
def _view_server(folder: Path) -> Iterator[str]:
    """http.server answers GET /view?… with the file named `view`, like ComfyUI's /view."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.head(url + "/view", timeout=1)
                break
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait()


def _execution(provider: str) -> ExecutionRecord:
    storage = StoredDestination(provider, _BUCKET if provider == "s3" else None,
                                f"bench/{provider}/")
    return NewExecution(
        id=f"exec_bench_{provider}", api_key_id="k", priority=5, workflow={},
        options=ExecutionOptions(output=OutputOptions("png", storage=storage)), signature="",
        webhook_url=None, client_id=None, submitted_at=time.time(), max_attempts=1,
        total_nodes=1).as_queued()


async def _measure(collector: OutputCollector, provider: str, history: dict[str, Any]
                   ) -> tuple[float, float]:
    """(peak RSS growth in MB, seconds) for collecting one output."""
    before = reset_peak()
    started = time.perf_counter()
    [record] = await collector.collect(_execution(provider), history)
    elapsed = time.perf_counter() - started
    assert record.size_bytes > 0
    return (status_kb("VmHWM") - before) / 1024, elapsed


async def _run(megabytes: int, folder: Path, storage: OutputStorage, view_url: str
               ) -> list[tuple[str, float, float]]:
    spool, outputs = folder / "spool", folder / "comfyui-output"
    outputs.mkdir()
    history = {"9": {"gifs": [{"filename": "big.bin", "subfolder": "", "type": "output"}]}}
    client = ComfyUIClient(view_url)
    local = OutputCollector(client, storage, spool, {"output": outputs})
    remote = OutputCollector(client, storage, spool)
    rows = []
    try:
        for label, collector, provider in (
            ("local folder → local storage", local, "local"),
            ("/view → local storage", remote, "local"),
            ("local folder → S3 (multipart)", local, "s3"),
            ("/view → S3 (multipart)", remote, "s3"),
        ):
            if collector is local:
                _write_output(outputs / "big.bin", megabytes)
            growth, seconds = await _measure(collector, provider, history)
            rows.append((label, growth, seconds))
    finally:
        await client.close()
    return rows


def _control(path: Path) -> tuple[float, float]:
    """What the meter shows for the naive way (the file read whole): proof that it sees it."""
    before = reset_peak()
    started = time.perf_counter()
    data = path.read_bytes()
    elapsed = time.perf_counter() - started
    growth = (status_kb("VmHWM") - before) / 1024
    del data
    return growth, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, moto_server() as s3:
        folder = Path(tmp)
        (folder / "served").mkdir()
        _write_output(folder / "served" / "view", args.mb)
        s3.create_bucket(_BUCKET)
        storage = StorageRouter(LocalStorage(folder / "storage", UrlSigner("bench")),
                                S3Storage(s3.s3_config()))
        with _view_server(folder / "served") as view_url:
            rows = asyncio.run(_run(args.mb, folder, storage, view_url))
            rows.append(("control: whole file read in memory",
                         *_control(folder / "served" / "view")))
    print(f"moving one {args.mb} MB output (peak RSS growth of the collector's process)")
    for label, growth, seconds in rows:
        print(f"  {label:32} {growth:7.1f} MB   {seconds:6.2f} s")


if __name__ == "__main__":
    main()
