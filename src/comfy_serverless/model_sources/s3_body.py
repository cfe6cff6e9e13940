"""Reading an s3 source in a worker thread with boto3 `get_object`, from an offset (`Range`),
with the operator's S3 settings: the endpoint is the operator's own, so no SSRF check
applies; the `model_sources` allowlist (`s3://<bucket glob>`) does."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from comfy_serverless.model_sources.errors import DownloadFailed, ModelUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from comfy_serverless.model_sources.transfer import Body

__all__ = ["read_s3"]

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_CHANGED_CODES = frozenset({"PreconditionFailed", "412"})
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied", "403", "404"})


def read_s3(body: Body, client: S3Client, chunk_bytes: int, offset: int) -> None:
    """Append the object's bytes from `offset` on to the partial file."""
    source = body.source
    try:
        response = _get_object(client, body, offset)
        if response is None:
            return  # the partial file already holds every byte
        total = _total(response, body.partial.size)
        stream = response["Body"]
        while chunk := stream.read(chunk_bytes):
            body.take(chunk, total)
    except ClientError as exc:
        raise _refusal(body, exc) from exc
    except (BotoCoreError, OSError) as exc:
        raise DownloadFailed(f"the download of {source.display} broke off at "
                             f"{body.partial.size} bytes ({type(exc).__name__})") from exc
    body.check_complete(total)


def _get_object(client: S3Client, body: Body, offset: int) -> Any:
    """The object's answer from `offset`; None when the partial file is already whole. An
    object that changed since the partial file began (its ETag no longer matches) is read
    again from the start."""
    bucket, key = body.source.bucket or "", body.source.key or ""
    if offset:
        try:
            return _resume(client, body, offset)
        except ClientError as exc:
            if _code(exc) not in _CHANGED_CODES:
                raise
    response = client.get_object(Bucket=bucket, Key=key)
    body.partial.restart()
    body.partial.remember(response.get("ETag"))
    return response


def _resume(client: S3Client, body: Body, offset: int) -> Any:
    bucket, key = body.source.bucket or "", body.source.key or ""
    match: dict[str, Any] = {}
    if body.partial.validator is not None:
        match["IfMatch"] = body.partial.validator
    if client.head_object(Bucket=bucket, Key=key, **match)["ContentLength"] == offset:
        return None
    return client.get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-", **match)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _total(response: Any, offset: int) -> int | None:
    """The object's whole size; `offset`: the bytes the partial file held before it."""
    match = _CONTENT_RANGE.match(str(response.get("ContentRange", "")))
    if match is not None and match[3] != "*":
        return int(match[3])
    length = response.get("ContentLength")
    return offset + int(length) if isinstance(length, int) else None


def _refusal(body: Body, exc: ClientError) -> ModelUnavailable:
    code = _code(exc)
    if code == "InvalidRange" or code in _CHANGED_CODES:
        body.partial.restart()
        return DownloadFailed(f"{body.source.display} no longer has the requested range "
                              "or changed; the next try starts over")
    if code in _MISSING_CODES:
        return ModelUnavailable(f"{body.source.display} cannot be read ({code})")
    return DownloadFailed(f"{body.source.display} could not be read ({code or 'S3 error'})")
