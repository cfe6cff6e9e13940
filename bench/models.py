"""Model downloads into the cache, against curl, and the memory they take.

    python -m bench.models [--mb 512] [--runs 3]

A Range-capable https server (tests/range_server.py, the test CA) serves one file of `--mb`
megabytes from its own process, on loopback. Each run:

- **curl**: `curl --cacert CA -o FILE URL`, the same file to the same disk, then
  `sha256sum FILE` (curl alone does not verify: "curl + sha256sum" is the same work);
- **cache**: `ModelCache.fetch` of the URL pinned by its sha256: streamed through the
  pinned outbound download into a partial file, hashed on the way, renamed into the cache.

Each is timed wall-clock and in CPU seconds (user + system; curl's from its rusage); the
median of `--runs` is reported (target: cache >= 0.8x curl), and the ratio of each run's
curl and cache, taken back to back (steadier under a changing load than a ratio of
medians). On a loaded machine with few
cores the wall-clock ratio measures the load as much as the client: the CPU seconds per GB
are the steadier figure.
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
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.memory import reset_peak, status_kb
from comfy_serverless.model_sources import ModelCache, SourcePolicy, Transport, parse_source
from comfy_serverless.webhooks.ssrf import WebhookPolicy

_CHUNK = 1 << 20
_POLICY = SourcePolicy(WebhookPolicy(allowed_networks=("127.0.0.1/32",)),
                       allowed_hosts=("127.0.0.1",))




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


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _curl(url: str, ca: Path, target: Path) -> tuple[Timing, Timing]:
    """curl alone, and curl then sha256sum of its file."""
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(["curl", "-sSf", "--cacert", str(ca), "-o", str(target), url], check=True)
    fetched = Timing(time.perf_counter() - started, _children_cpu() - cpu)
    subprocess.run(["sha256sum", str(target)], check=True, stdout=subprocess.DEVNULL)
    verified = Timing(time.perf_counter() - started, _children_cpu() - cpu)
    target.unlink()
    return fetched, verified


def _transport(ca: Path, chunk_bytes: int) -> Transport:
    return Transport(ssl.create_default_context(cafile=str(ca)), timeout=60,
                     chunk_bytes=chunk_bytes)


async def _cache_fetch(url: str, ca: Path, root: Path, chunk_bytes: int
                       ) -> tuple[Timing, float]:
    """The timing and the peak RSS growth (MB) of one download into a new cache."""
    cache = ModelCache(root, max_bytes=1 << 40, transport=_transport(ca, chunk_bytes))
    before = reset_peak()
    cpu, started = _own_cpu(), time.perf_counter()
    await cache.fetch(parse_source(url), _POLICY)
    timing = Timing(time.perf_counter() - started, _own_cpu() - cpu)
    growth = (status_kb("VmHWM") - before) / 1024
    shutil.rmtree(root)
    return timing, growth


async def _concurrent(url: str, ca: Path, root: Path, count: int, chunk_bytes: int) -> float:
    cache = ModelCache(root, max_bytes=1 << 40, transport=_transport(ca, chunk_bytes))
    started = time.perf_counter()
    await asyncio.gather(*(cache.fetch(parse_source(url), _POLICY) for _ in range(count)))
    elapsed = time.perf_counter() - started
    shutil.rmtree(root)
    return elapsed


def _median(timings: list[Timing]) -> Timing:
    return Timing(statistics.median(t.wall for t in timings),
                  statistics.median(t.cpu for t in timings))


async def _run(megabytes: int, runs: int, folder: Path, chunk_bytes: int) -> None:
    model = folder / "model.bin"
    sha256 = _write_model(model, megabytes)
    with _server(folder, model) as base:
        url, ca = f"{base}#sha256={sha256}", folder / "tls" / "ca.pem"
        curl, verified, cache, growths = [], [], [], []
        for _ in range(runs):
            os.sync()  # each download starts with no other's dirty pages to write back
            fetched, checked = _curl(base, ca, folder / "curl.bin")
            curl.append(fetched)
            verified.append(checked)
            os.sync()
            timing, growth = await _cache_fetch(url, ca, folder / "cache", chunk_bytes)
            cache.append(timing)
            growths.append(growth)
        one = await _concurrent(url, ca, folder / "cache", 1, chunk_bytes)
        eight = await _concurrent(url, ca, folder / "cache", 8, chunk_bytes)
    print(f"file: {megabytes} MB over https on loopback (server in its own process), "
          f"median of {runs}")
    rows = (("curl", _median(curl)), ("curl + sha256sum", _median(verified)),
            ("cache (hashed, renamed)", _median(cache)))
    for label, timing in rows:
        print(f"{label:24} {timing.wall:6.2f} s  {megabytes / timing.wall:7.1f} MB/s  "
              f"CPU {timing.cpu / megabytes * 1024:5.2f} s/GB")
    print(f"cache / curl throughput: {rows[0][1].wall / rows[2][1].wall:.2f}x; cache / "
          f"(curl + sha256sum): {rows[1][1].wall / rows[2][1].wall:.2f}x (target >= 0.8x)")
    paired = [fetched.wall / timing.wall for fetched, timing in zip(curl, cache, strict=True)]
    print(f"cache / curl, run by run (each pair back to back): "
          f"{', '.join(f'{ratio:.2f}x' for ratio in paired)}; median "
          f"{statistics.median(paired):.2f}x")
    print(f"peak RSS growth during a cache download: {max(growths):.1f} MB (target < 50 MB)")
    print(f"one fetch of a new source: {one:.2f} s; eight concurrent: {eight:.2f} s "
          f"({eight / one:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-kib", type=int, default=Transport.DEFAULT_CHUNK_BYTES >> 10,
                        help="the transport's read size")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-models-") as folder:
        asyncio.run(_run(arguments.mb, arguments.runs, Path(folder),
                         arguments.chunk_kib << 10))


if __name__ == "__main__":
    main()
