"""Moving a source's bytes into a partial file, from where it left off.

An http(s) source (https and hf) is fetched through the outbound client of webhooks and
input images (`webhooks/outbound.py`): to the very addresses the SSRF check passed, no
redirects, no proxy from the environment, no decompression. A resumed download asks for
`Range: bytes=<size>-`; a `206` continues the partial file, a `200` (the server ignores
ranges) starts it over. An s3 source is read with boto3 `get_object` (with the same
`Range`), through the operator's S3 settings, in a thread.

Failures are typed here: the network and 5xx/408/429 answers are `DownloadFailed`
(retryable, the partial file is kept); any other answer is a `ModelUnavailable` that trying
again will not fix. Messages name the source's display form and the status, never a header.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from comfy_serverless.model_sources.errors import DownloadFailed, ModelUnavailable
from comfy_serverless.model_sources.partial import PartialFile
from comfy_serverless.model_sources.policy import SourcePolicy
from comfy_serverless.model_sources.sources import ModelSource
from comfy_serverless.storage.s3 import S3Config
from comfy_serverless.webhooks.outbound import (
    OutboundError,
    OutboundRequest,
    outbound_client,
    pinned_stream,
)
from comfy_serverless.webhooks.ssrf import CheckedUrl

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["Progress", "Transport", "transfer"]

Progress = Callable[[int, int | None], None]
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED = re.compile(r"^bytes \*/(\d+)$")
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_MISSING_S3_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied", "403", "404"})


class Transport:
    """How bytes are reached: the TLS context (an operator's CA bundle), the read timeout,
    the chunk size, and the S3 settings that s3 sources are read with."""

    def __init__(self, tls: ssl.SSLContext | None = None, *, timeout: float = 60.0,
                 chunk_bytes: int = 1 << 20, s3: S3Config | None = None) -> None:
        self.tls = tls or ssl.create_default_context()
        self.timeout = timeout
        self.chunk_bytes = chunk_bytes
        self.s3 = s3

    @cached_property
    def s3_client(self) -> S3Client:
        config = self.s3 or S3Config()
        style: Any = config.addressing_style
        return boto3.client(
            "s3", endpoint_url=config.endpoint_url, region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": style}))


async def transfer(source: ModelSource, checked: CheckedUrl | None, policy: SourcePolicy,
                   transport: Transport, partial: PartialFile, progress: Progress) -> None:
    """Fill `partial` with the whole of `source`, resuming from what it already holds."""
    offset = await partial.resume()
    try:
        if checked is None:
            await _from_s3(source, transport, partial, offset, progress)
        else:
            await _from_https(source, checked, policy, transport, partial, offset, progress)
    finally:
        partial.close()


async def _from_https(source: ModelSource, checked: CheckedUrl, policy: SourcePolicy,
                      transport: Transport, partial: PartialFile, offset: int,
                      progress: Progress) -> None:
    headers = {**policy.headers_for(checked.target.host), "Accept": "*/*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = OutboundRequest("GET", checked, headers)
    try:
        async with outbound_client(transport.tls, transport.timeout) as client, \
                pinned_stream(client, request) as response:
            total = await _position(source, response, partial, offset)
            async for chunk in response.aiter_raw(transport.chunk_bytes):
                await partial.append(chunk)
                progress(partial.size, total)
    except OutboundError as exc:
        raise DownloadFailed(f"the download of {source.display} broke off at "
                             f"{partial.size} bytes ({type(exc).__name__})") from exc
    _check_complete(source, partial, total)


async def _position(source: ModelSource, response: httpx.Response, partial: PartialFile,
                    offset: int) -> int | None:
    """Where the body starts and the whole size, from the status and Content-Range."""
    status = response.status_code
    if status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if match is None or int(match[1]) != offset:
            await partial.restart()
            raise DownloadFailed(f"{source.display} answered a range that does not continue "
                                 "the partial download; the next try starts over")
        return None if match[3] == "*" else int(match[3])
    if status == 200:
        if offset:
            await partial.restart()
        length = response.headers.get("content-length", "")
        return int(length) if length.isdigit() else None
    if status == 416:
        unsatisfied = _UNSATISFIED.match(response.headers.get("content-range", ""))
        if unsatisfied is not None and int(unsatisfied[1]) == offset:
            return offset  # the partial file already holds every byte (kept by CacheFull)
        await partial.restart()
        raise DownloadFailed(f"{source.display} no longer has the requested range; the next "
                             "try starts over")
    raise _refusal(source, status)


def _refusal(source: ModelSource, status: int) -> ModelUnavailable:
    if status >= 500 or status in _RETRYABLE_STATUS:
        return DownloadFailed(f"{source.display} answered {status}")
    if 300 <= status < 400:
        return ModelUnavailable(f"{source.display} answered {status} (redirects are not "
                                "followed: name the final URL)")
    return ModelUnavailable(f"{source.display} answered {status}")


def _check_complete(source: ModelSource, partial: PartialFile, total: int | None) -> None:
    if total is not None and partial.size != total:
        raise DownloadFailed(f"the download of {source.display} ended at {partial.size} of "
                             f"{total} bytes")


async def _from_s3(source: ModelSource, transport: Transport, partial: PartialFile,
                   offset: int, progress: Progress) -> None:
    try:
        response = await asyncio.to_thread(_get_object, transport, source, offset)
        total = _s3_total(response, offset)
        body = response["Body"]
        while chunk := await asyncio.to_thread(body.read, transport.chunk_bytes):
            await partial.append(chunk)
            progress(partial.size, total)
    except ClientError as exc:
        refusal = await _s3_refusal(source, transport, partial, exc)
        if refusal is not None:
            raise refusal from exc
        return
    except (BotoCoreError, OSError) as exc:
        raise DownloadFailed(f"the download of {source.display} broke off at "
                             f"{partial.size} bytes ({type(exc).__name__})") from exc
    _check_complete(source, partial, total)


def _get_object(transport: Transport, source: ModelSource, offset: int) -> Any:
    request: dict[str, str] = {"Bucket": source.bucket or "", "Key": source.key or ""}
    if offset:
        request["Range"] = f"bytes={offset}-"
    return transport.s3_client.get_object(**request)  # type: ignore[arg-type]


def _s3_total(response: Any, offset: int) -> int | None:
    match = _CONTENT_RANGE.match(str(response.get("ContentRange", "")))
    if match is not None and match[3] != "*":
        return int(match[3])
    length = response.get("ContentLength")
    return offset + int(length) if isinstance(length, int) else None


def _s3_size(transport: Transport, source: ModelSource) -> int:
    head = transport.s3_client.head_object(Bucket=source.bucket or "", Key=source.key or "")
    return int(head["ContentLength"])


async def _s3_refusal(source: ModelSource, transport: Transport, partial: PartialFile,
                      exc: ClientError) -> ModelUnavailable | None:
    """The error to raise for an S3 refusal; None when the partial file is complete."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code == "InvalidRange":
        if await asyncio.to_thread(_s3_size, transport, source) == partial.size:
            return None  # the partial file already holds every byte
        await partial.restart()
        return DownloadFailed(f"{source.display} no longer has the requested range")
    if code in _MISSING_S3_CODES:
        return ModelUnavailable(f"{source.display} cannot be read ({code})")
    return DownloadFailed(f"{source.display} could not be read ({code or 'S3 error'})")
