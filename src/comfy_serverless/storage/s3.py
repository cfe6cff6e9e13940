"""Outputs in S3, or any S3-compatible store (`endpoint_url`), through boto3.

boto3 is blocking: every call that touches the network runs in a worker thread. Uploads
go through boto3's transfer manager from the spooled file, so a large output is sent in
multipart chunks and never held whole in memory.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from comfy_serverless.errors import StorageError
from comfy_serverless.storage.base import StoredLocation

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["PRESIGN_MAX_SECONDS", "S3Config", "S3Storage", "s3_client"]

# S3's own limit on a presigned URL's lifetime (signature version 4).
PRESIGN_MAX_SECONDS = 7 * 24 * 3600
_BUCKET_PLACEHOLDER = "{bucket}"


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: str = "auto"
    # Base of public object URLs: for `default_bucket` only, unless it names `{bucket}`.
    public_base_url: str | None = None
    default_bucket: str | None = None
    multipart_threshold: int = 8 * 1024 * 1024
    multipart_chunksize: int = 8 * 1024 * 1024
    max_concurrency: int = 2


def s3_client(config: S3Config) -> S3Client:
    """A boto3 client for these settings: outputs' storage, and s3 model sources."""
    return boto3.client(
        "s3", endpoint_url=config.endpoint_url, region_name=config.region,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        config=Config(signature_version="s3v4",
                      s3={"addressing_style": _addressing(config.addressing_style)}))


class S3Storage:
    provider = "s3"

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._client = s3_client(config)
        self._transfer = TransferConfig(
            multipart_threshold=config.multipart_threshold,
            multipart_chunksize=config.multipart_chunksize,
            max_concurrency=config.max_concurrency,
            use_threads=config.max_concurrency > 1)

    async def put_file(self, location: StoredLocation, source: Path, content_type: str
                       ) -> StoredLocation:
        bucket = _bucket(location)
        await _off_loop(self._client.upload_file, str(source), bucket, location.key,
                        ExtraArgs={"ContentType": content_type}, Config=self._transfer)
        source.unlink(missing_ok=True)
        return StoredLocation(self.provider, location.key, bucket, location.public)

    async def download_path(self, location: StoredLocation, expires: int) -> str:
        """A presigned URL, signed in a thread: boto3 may refresh its credentials (an
        instance role, SSO) over the network while signing."""
        if location.public:
            return self.object_url(location)
        lifetime = max(1, min(PRESIGN_MAX_SECONDS, expires - int(time.time())))
        url: str = await _off_loop(
            self._client.generate_presigned_url, "get_object",
            Params={"Bucket": _bucket(location), "Key": location.key}, ExpiresIn=lifetime)
        return url

    def object_url(self, location: StoredLocation) -> str:
        """The plain (unsigned) URL of an object, for buckets that allow public reads.
        `public_base_url` serves the default bucket, or any bucket when it has `{bucket}`;
        other buckets get their own S3 URL."""
        bucket, key = _bucket(location), quote(location.key)
        base = self.config.public_base_url
        if base and _BUCKET_PLACEHOLDER in base:
            return f"{base.replace(_BUCKET_PLACEHOLDER, bucket).rstrip('/')}/{key}"
        if base and bucket == self.config.default_bucket:
            return f"{base.rstrip('/')}/{key}"
        if self.config.endpoint_url:
            return f"{self.config.endpoint_url.rstrip('/')}/{bucket}/{key}"
        region = self.config.region or "us-east-1"
        return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"

    async def read_bytes(self, location: StoredLocation) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(Bucket=_bucket(location), Key=location.key)
            return response["Body"].read()

        data: bytes = await _off_loop(read)
        return data

    async def fetch_to(self, location: StoredLocation, target: Path) -> None:
        await _off_loop(self._client.download_file, _bucket(location), location.key,
                        str(target), Config=self._transfer)

    async def delete(self, location: StoredLocation) -> None:
        await _off_loop(self._client.delete_object, Bucket=_bucket(location), Key=location.key)


def _addressing(style: str) -> Literal["auto", "path", "virtual"]:
    if style not in ("auto", "path", "virtual"):
        raise StorageError(f"s3_addressing_style must be auto, path or virtual, not {style!r}")
    return cast(Literal["auto", "path", "virtual"], style)


def _bucket(location: StoredLocation) -> str:
    if not location.bucket:
        raise StorageError(f"S3 location {location.key!r} has no bucket")
    return location.bucket


async def _off_loop(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one blocking boto3 call in a thread; its errors become StorageError: botocore's,
    boto3's own (S3UploadFailedError from the transfer manager) and the local file's."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except (BotoCoreError, ClientError, Boto3Error, OSError) as exc:
        raise StorageError(f"S3 request failed: {exc}") from exc
