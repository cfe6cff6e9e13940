"""Moving a source's bytes into a partial file, from where it left off.

An http(s) source (https and hf) is fetched through the outbound requests of webhooks and
input images (`webhooks/outbound.py`): to the very addresses the SSRF check passed, no
proxy from the environment, no decompression; redirects are followed one checked hop at a
time (`redirects.py`). A resumed download asks for
`Range: bytes=<size>-`; a `206` continues the partial file, a `200` (the server ignores
ranges, or the file changed) starts it over, a `416` whose size is what the partial file
holds finishes it. An s3 source is read with boto3 `get_object` (with the same `Range`)
through the operator's S3 settings.

A partial file is resumed only when a splice of two versions of the file cannot be
admitted: when the source is pinned by sha256 (the final check catches it), or when the
validator saved with its first byte goes back with the `Range` (`If-Range` with the ETag or
Last-Modified; `IfMatch` with the S3 ETag), so that a changed file is sent whole. Any other
partial file is started over.

The whole body is read in one thread of this module's pool (`_DOWNLOAD_THREADS`), with
blocking sockets (the event loop's SSL layer halves the throughput, see bench.models);
progress is handed back to the loop. Cancelling the download stops the thread at its next
chunk (or its read timeout), and the cancellation completes only once the thread is done.
More concurrent downloads than the pool's threads wait their turn.

Failures are typed here: the network and 5xx/408/429 answers are `DownloadFailed`
(retryable, the partial file is kept when it can be resumed); any other answer is a
`ModelUnavailable` that trying again will not fix. Messages name the source's display
form and the status, never a header.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING

from comfy_serverless.model_sources.errors import DownloadFailed
from comfy_serverless.model_sources.partial import PartialFile
from comfy_serverless.model_sources.policy import SourcePolicy
from comfy_serverless.model_sources.redirects import read_following_redirects
from comfy_serverless.model_sources.sources import ModelSource
from comfy_serverless.webhooks.ssrf import CheckedUrl

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from comfy_serverless.storage.s3 import S3Config

__all__ = ["Body", "Progress", "Transport", "transfer"]

Progress = Callable[[int, int | None], None]
_DOWNLOAD_THREADS = 4


@functools.cache
def _download_pool() -> ThreadPoolExecutor:
    """The threads that read download bodies: their own, so that a long download never
    holds a thread of the loop's default pool (storage, output conversion)."""
    return ThreadPoolExecutor(_DOWNLOAD_THREADS, thread_name_prefix="model-download")


class Transport:
    """How bytes are reached: the TLS context (an operator's CA bundle), the read timeout,
    the chunk size, and the S3 settings that s3 sources are read with."""

    DEFAULT_CHUNK_BYTES = 256 << 10  # bench.models: 29% less CPU per GB than 1 MiB here

    def __init__(self, tls: ssl.SSLContext | None = None, *, timeout: float = 60.0,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, s3: S3Config | None = None) -> None:
        self.tls = tls or ssl.create_default_context()
        self.timeout = timeout
        self.chunk_bytes = chunk_bytes
        self.s3 = s3

    @cached_property
    def s3_client(self) -> S3Client:
        """Made on first use: boto3 is imported only when an s3 source is read, so that
        a deployment without S3 runs without boto3 (as storage/ does)."""
        from comfy_serverless.storage.s3 import S3Config, s3_client

        return s3_client(self.s3 or S3Config())


class Body:
    """What a reader thread needs: the partial file, progress, and the stop signal."""

    def __init__(self, source: ModelSource, partial: PartialFile, progress: Progress,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.source = source
        self.partial = partial
        self.stopped = threading.Event()
        self.loop = loop
        self._progress = progress

    def raise_if_stopped(self) -> None:
        if self.stopped.is_set():
            raise DownloadFailed(f"the download of {self.source.display} was stopped")

    def take(self, chunk: bytes | memoryview, total: int | None) -> None:
        """One chunk from the network: queued for writing, progress reported on the loop."""
        self.raise_if_stopped()
        self.partial.append(chunk)
        self.loop.call_soon_threadsafe(self._progress, self.partial.size, total)

    def check_complete(self, total: int | None) -> None:
        if total is not None and self.partial.size != total:
            raise DownloadFailed(f"the download of {self.source.display} ended at "
                                 f"{self.partial.size} of {total} bytes")


async def transfer(source: ModelSource, checked: CheckedUrl | None, policy: SourcePolicy,
                   transport: Transport, partial: PartialFile, progress: Progress) -> None:
    """Fill `partial` with the whole of `source`, resuming from what it already holds."""
    loop = asyncio.get_running_loop()
    body = Body(source, partial, progress, loop)
    reading = loop.run_in_executor(_download_pool(), _fill, body, checked, policy, transport)
    try:
        await asyncio.shield(reading)
    except asyncio.CancelledError:
        # The thread stops at its next chunk; wait for it, so that the download's lock is
        # released only once nothing writes to the partial file any more.
        body.stopped.set()
        await asyncio.wait({reading})
        raise


def _fill(body: Body, checked: CheckedUrl | None, policy: SourcePolicy,
          transport: Transport) -> None:
    offset = body.partial.resume()
    try:
        if offset and body.source.sha256 is None and body.partial.validator is None:
            body.partial.restart()  # nothing would tell a changed file's bytes from these
            offset = 0
        if checked is None:
            from comfy_serverless.model_sources.s3_body import read_s3

            read_s3(body, transport.s3_client, transport.chunk_bytes, offset)
        else:
            read_following_redirects(body, checked, policy, transport, offset)
        body.partial.finish()
    finally:
        body.partial.close()
