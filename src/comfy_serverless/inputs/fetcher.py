"""Fetches an input image from an https URL: the webhook SSRF rules, a size cap, magic
bytes, and a pixel cap read from the header.

The host is resolved and checked once, and the connection goes to exactly the addresses
that passed (the URL's host still names the server for TLS), so a second DNS answer cannot
point it elsewhere (see webhooks/outbound.py). Redirects are not followed. The body is
streamed as sent to a spool file and the download stops as soon as it passes the cap, or
when the whole fetch has taken longer than the timeout. The image's width and height come
from its header (never decoded): more than `max_pixels` is refused.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import httpx

from comfy_serverless.inputs.dimensions import image_dimensions, image_extent, jpeg_frame_headers
from comfy_serverless.spool import SpoolFile
from comfy_serverless.validation.values import IMAGE_HEAD_BYTES, sniff_image_format
from comfy_serverless.webhooks.outbound import (
    OutboundError,
    OutboundRequest,
    outbound_client,
    pinned_stream,
)
from comfy_serverless.webhooks.ssrf import (
    CheckedUrl,
    UnsafeDestination,
    WebhookPolicy,
    check_destination,
)

__all__ = ["FetchPolicy", "FetchedImage", "ImageRefused", "fetch_image", "spool_image"]

_CHUNK = 1 << 16


class ImageRefused(ValueError):
    """An input image that cannot be used; the message says why."""


@dataclass(frozen=True)
class FetchPolicy:
    destinations: WebhookPolicy
    max_bytes: int
    formats: tuple[str, ...]
    timeout: float = 30.0
    ca_bundle: Path | None = None
    max_pixels: int = 4096 * 4096
    deadline: float = 60.0
    concurrency: int = 4

    @cached_property
    def _tls(self) -> ssl.SSLContext:
        if self.ca_bundle is not None:
            return ssl.create_default_context(cafile=str(self.ca_bundle))
        return ssl.create_default_context()

    def tls(self) -> ssl.SSLContext:
        """The TLS context of every fetch under this policy: built (CA bundle read) once."""
        return self._tls


@dataclass(frozen=True)
class FetchedImage:
    path: Path
    format: str
    size: int


class _Sink:
    """A spool file that refuses more than the cap and checks the magic bytes."""

    def __init__(self, spool_dir: Path, policy: FetchPolicy) -> None:
        self._policy = policy
        self._spool = SpoolFile(spool_dir)
        self.path = self._spool.path
        self.size = 0
        self._head = b""

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._policy.max_bytes:
            raise ImageRefused(f"the image is larger than {self._policy.max_bytes} bytes")
        if len(self._head) < IMAGE_HEAD_BYTES:
            self._head += chunk[:IMAGE_HEAD_BYTES]
        self._spool.write(chunk)

    async def finish(self) -> FetchedImage:
        """The magic bytes here; the headers (file reads, Pillow) in a thread."""
        self._spool.keep()
        kind = sniff_image_format(self._head)
        if kind is None or kind not in self._policy.formats:
            raise ImageRefused("the data is not an image in a supported format "
                               f"({', '.join(self._policy.formats)}), by its magic bytes")
        await asyncio.to_thread(_check_pixels, self.path, kind, self._policy.max_pixels)
        return FetchedImage(self.path, kind, self.size)

    def discard(self) -> None:
        self._spool.discard()


def _check_pixels(path: Path, kind: str, max_pixels: int) -> None:
    size = image_dimensions(path, kind)
    if size is None:
        raise ImageRefused(f"the {kind} header does not give the image's dimensions")
    width, height = size
    if width * height > max_pixels:
        raise ImageRefused(f"the image is {width}x{height} pixels, more than the "
                           f"{max_pixels} allowed (max_input_pixels)")
    extent = image_extent(path, kind)
    if extent is None:
        raise ImageRefused(f"the {kind} file cannot be read as an image")
    if extent.pixels > max_pixels:
        raise ImageRefused(
            f"the image is {extent.frames} frame(s) of up to {extent.width}x{extent.height}, "
            f"{extent.pixels} pixels in all, more than the {max_pixels} allowed "
            "(max_input_pixels)")
    if kind == "jpg" and jpeg_frame_headers(path) > 1:
        raise ImageRefused("the jpg has more than one start-of-frame header before its scan")


async def spool_image(data: bytes, spool_dir: Path, policy: FetchPolicy) -> FetchedImage:
    """Inline image bytes (decoded base64), checked like a download and spooled to a file."""
    sink = _Sink(spool_dir, policy)
    try:
        sink.write(data)
        return await sink.finish()
    except BaseException:
        sink.discard()
        raise


async def fetch_image(url: str, policy: FetchPolicy, spool_dir: Path) -> FetchedImage:
    """Download `url` into a spool file; ImageRefused (before any connection, for an unsafe
    host) when it cannot be used."""
    try:
        checked = await check_destination(url, policy.destinations)
    except UnsafeDestination as exc:
        raise ImageRefused(str(exc)) from exc
    sink = _Sink(spool_dir, policy)
    try:
        async with outbound_client(policy.tls(), policy.timeout) as client:
            await _download(client, checked, policy, sink)
        return await sink.finish()
    except BaseException:
        sink.discard()
        raise


async def _download(client: httpx.AsyncClient, checked: CheckedUrl, policy: FetchPolicy,
                    sink: _Sink) -> None:
    request = OutboundRequest("GET", checked, {"Accept": "image/*"})
    try:
        async with asyncio.timeout(policy.timeout), pinned_stream(client, request) as response:
            _check_response(response, policy)
            async for chunk in response.aiter_raw(_CHUNK):
                sink.write(chunk)
    except OutboundError as exc:
        raise ImageRefused(f"the image could not be fetched: {exc}") from exc
    except TimeoutError as exc:
        raise ImageRefused(f"the image took more than {policy.timeout:g}s to fetch") from exc


def _check_response(response: httpx.Response, policy: FetchPolicy) -> None:
    if response.is_redirect:
        raise ImageRefused(f"the URL answered {response.status_code} (redirects are not "
                           "followed)")
    if response.status_code != 200:
        raise ImageRefused(f"the URL answered {response.status_code}")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > policy.max_bytes:
        raise ImageRefused(f"the image is {length} bytes, more than {policy.max_bytes}")
