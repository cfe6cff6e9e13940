"""Model downloads into the cache, against curl, and the memory they take.

    python -m bench.models [--mb 512] [--runs 3]

A Range-capable https server (tests/range_server.py, the test CA) serves one file of `--mb`
megabytes from its own process, on loopback. Each run:

- **curl**: `curl --cacert CA -o FILE URL`, the same file to the same disk;
- **cache**: `ModelCache.fetch` of the URL pinned by its sha256: streamed through the
  pinned outbound client into a partial file, hashed on the way, renamed into the cache.

Both are timed wall-clock; the median of `--runs` is reported (target: cache >= 0.8x curl).
The peak RSS growth of this process during a cache download is read from
`/proc/self/status` (VmHWM, reset before each run through `/proc/self/clear_refs`;
target: flat, under 50 MB). Last, eight concurrent fetches of one new source against one
fetch alone (single flight: eight should cost about one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from comfy_serverless.model_sources import ModelCache, SourcePolicy, Transport, parse_source
from comfy_serverless.webhooks.ssrf import WebhookPolicy

_CHUNK = 1 << 20
_POLICY = SourcePolicy(WebhookPolicy(allowed_networks=("127.0.0.1/32",)),
                       allowed_hosts=("127.0.0.1",))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> int:
    """Reset the peak RSS to the current RSS; returns the current RSS in kB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def _write_model(path: Path, megabytes: int) -> str:
    """A file of random megabytes; its sha256."""
    hasher = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(megabytes):
            block = os.urandom(_CHUNK)
            hasher.update(block)
            handle.write(block)
    return hasher.hexdigest()


@contextlib.contextmanager
def _server(folder: Path, model: Path) -> Iterator[str]:
    """The Range server in its own process (its CPU and memory are not this process's)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.range_server", str(folder / "tls"), "/model.bin",
         str(model)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip() + "/model.bin"
    finally:
        process.terminate()
        process.wait()


def _curl(url: str, ca: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-sSf", "--cacert", str(ca), "-o", str(target), url], check=True)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def _transport(ca: Path) -> Transport:
    return Transport(ssl.create_default_context(cafile=str(ca)), timeout=60)


async def _cache_fetch(url: str, ca: Path, root: Path) -> tuple[float, float]:
    """(seconds, peak RSS growth in MB) of one download into a new cache."""
    cache = ModelCache(root, max_bytes=1 << 40, transport=_transport(ca))
    before = _reset_peak()
    started = time.perf_counter()
    await cache.fetch(parse_source(url), _POLICY)
    elapsed = time.perf_counter() - started
    growth = (_status_kb("VmHWM") - before) / 1024
    shutil.rmtree(root)
    return elapsed, growth


async def _concurrent(url: str, ca: Path, root: Path, count: int) -> float:
    cache = ModelCache(root, max_bytes=1 << 40, transport=_transport(ca))
    started = time.perf_counter()
    await asyncio.gather(*(cache.fetch(parse_source(url), _POLICY) for _ in range(count)))
    elapsed = time.perf_counter() - started
    shutil.rmtree(root)
    return elapsed


async def _run(megabytes: int, runs: int, folder: Path) -> None:
    model = folder / "model.bin"
    sha256 = _write_model(model, megabytes)
    with _server(folder, model) as base:
        url, ca = f"{base}#sha256={sha256}", folder / "tls" / "ca.pem"
        curl_times, cache_times, growths = [], [], []
        for _ in range(runs):
            curl_times.append(_curl(base, ca, folder / "curl.bin"))
            seconds, growth = await _cache_fetch(url, ca, folder / "cache")
            cache_times.append(seconds)
            growths.append(growth)
        one = await _concurrent(url, ca, folder / "cache", 1)
        eight = await _concurrent(url, ca, folder / "cache", 8)
    _report(megabytes, statistics.median(curl_times), statistics.median(cache_times),
            max(growths), (one, eight))


def _report(megabytes: int, curl: float, cache: float, growth: float,
            concurrent: tuple[float, float]) -> None:
    print(f"file: {megabytes} MB over https on loopback (server in its own process)")
    print(f"curl:  {curl:6.2f} s  {megabytes / curl:7.1f} MB/s (median)")
    print(f"cache: {cache:6.2f} s  {megabytes / cache:7.1f} MB/s (median, hashed, renamed)")
    print(f"cache / curl throughput: {curl / cache:.2f}x (target >= 0.8x)")
    print(f"peak RSS growth during a cache download: {growth:.1f} MB (target < 50 MB)")
    one, eight = concurrent
    print(f"one fetch of a new source: {one:.2f} s; eight concurrent: {eight:.2f} s "
          f"({eight / one:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-models-") as folder:
        asyncio.run(_run(arguments.mb, arguments.runs, Path(folder)))


if __name__ == "__main__":
    main()
