"""S3 storage against a real S3 server (moto's server mode on loopback)."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from comfy_serverless.errors import StorageError
from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.storage.s3 import PRESIGN_MAX_SECONDS, S3Storage
from comfy_serverless.testing_s3 import S3Server

MB = 1024 * 1024


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"outputs-{secrets.token_hex(4)}"
    s3_server.create_bucket(name)
    return name


def _storage(server: S3Server, **overrides: object) -> S3Storage:
    return S3Storage(server.s3_config(multipart_threshold=5 * MB, multipart_chunksize=5 * MB,
                                      **overrides))


def _random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


async def test_a_large_file_is_uploaded_in_parts_and_its_presigned_url_downloads_it(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    storage = _storage(s3_server)
    data = _random_file(tmp_path / "big.bin", 12 * MB)
    location = StoredLocation("s3", "outputs/exec_1/big.bin", bucket)
    stored = await storage.put_file(location, tmp_path / "big.bin", "application/x-test")

    assert stored == location
    assert not (tmp_path / "big.bin").exists(), "the spooled source is consumed"
    head = s3_server.client().head_object(Bucket=bucket, Key=location.key)
    assert "-" in head["ETag"], "a multipart upload's ETag names its part count"
    assert head["ContentType"] == "application/x-test"
    url = await storage.download_path(stored, int(time.time()) + 3600)
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == data


async def test_presigned_urls_never_outlive_seven_days(s3_server: S3Server, bucket: str) -> None:
    url = await _storage(s3_server).download_path(
        StoredLocation("s3", "k", bucket), int(time.time()) + 30 * 86_400)
    assert int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0]) == PRESIGN_MAX_SECONDS


async def test_a_public_object_gets_its_plain_url(s3_server: S3Server, bucket: str) -> None:
    location = StoredLocation("s3", "outputs/exec_2/a b.png", bucket, public=True)
    url = await _storage(s3_server).download_path(location, int(time.time()) + 60)
    assert url == f"{s3_server.endpoint_url}/{bucket}/outputs/exec_2/a%20b.png"
    cdn = _storage(s3_server, public_base_url="https://cdn.example.com/", default_bucket=bucket)
    assert await cdn.download_path(location, 0) == "https://cdn.example.com/outputs/exec_2/a%20b.png"


async def test_read_fetch_and_delete(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    storage = _storage(s3_server)
    data = _random_file(tmp_path / "small.txt", 1000)
    location = await storage.put_file(StoredLocation("s3", "x/small.txt", bucket),
                                      tmp_path / "small.txt", "text/plain")
    assert await storage.read_bytes(location) == data
    await storage.fetch_to(location, tmp_path / "copy.txt")
    assert (tmp_path / "copy.txt").read_bytes() == data

    await storage.delete(location)
    await storage.delete(location)  # already gone: not an error
    with pytest.raises(StorageError):
        await storage.read_bytes(location)


async def test_an_upload_the_store_refuses_is_a_storage_error(
    s3_server: S3Server, tmp_path: Path
) -> None:
    storage = _storage(s3_server)
    _random_file(tmp_path / "out.png", 1024)
    with pytest.raises(StorageError):
        await storage.put_file(StoredLocation("s3", "x/out.png", "no-such-bucket"),
                               tmp_path / "out.png", "image/png")
    with pytest.raises(StorageError):
        await storage.fetch_to(StoredLocation("s3", "x/out.png", "no-such-bucket"),
                               tmp_path / "missing-folder" / "copy.png")
