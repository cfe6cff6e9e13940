"""Plain object URLs of public S3 outputs (no server: nothing here touches the network)."""

from __future__ import annotations

import asyncio
import time

import pytest

from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.storage.s3 import S3Config, S3Storage


def _url(bucket: str, **config: str) -> str:
    storage = S3Storage(S3Config(region="eu-west-1", **config))  # type: ignore[arg-type]
    return storage.object_url(StoredLocation("s3", "outputs/e/a.png", bucket, public=True))


def test_the_public_base_serves_the_default_bucket_only() -> None:
    cdn = {"public_base_url": "https://cdn.example.com/", "default_bucket": "main"}
    assert _url("main", **cdn) == "https://cdn.example.com/outputs/e/a.png"
    assert _url("other", **cdn) == "https://other.s3.eu-west-1.amazonaws.com/outputs/e/a.png"
    assert _url("other", public_base_url="https://cdn.example.com") == (
        "https://other.s3.eu-west-1.amazonaws.com/outputs/e/a.png"), "no default bucket"


def test_a_bucket_placeholder_serves_every_bucket() -> None:
    cdn = {"public_base_url": "https://cdn.example.com/{bucket}/", "default_bucket": "main"}
    assert _url("main", **cdn) == "https://cdn.example.com/main/outputs/e/a.png"
    assert _url("other", **cdn) == "https://cdn.example.com/other/outputs/e/a.png"


async def test_presigning_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = S3Storage(S3Config(region="eu-west-1"))

    def slow_sign(*args: object, **kwargs: object) -> str:
        time.sleep(0.3)  # a blocking credential refresh
        return "https://signed.example.com/a.png"

    monkeypatch.setattr(storage._client, "generate_presigned_url", slow_sign)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    url = await storage.download_path(StoredLocation("s3", "a.png", "main"),
                                      int(time.time()) + 60)
    task.cancel()
    assert url == "https://signed.example.com/a.png"
    assert ticks >= 10, "the loop kept running while boto3 signed"
