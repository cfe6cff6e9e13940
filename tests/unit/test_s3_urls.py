"""Plain object URLs of public S3 outputs (no server: nothing here touches the network)."""

from __future__ import annotations

import asyncio
import threading
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
    loop_ran = threading.Event()

    def signing_that_needs_the_loop(*args: object, **kwargs: object) -> str:
        # A blocking credential refresh: it only ends early if the event loop runs meanwhile.
        if not loop_ran.wait(5):
            return "signed while the event loop was blocked"
        return "https://signed.example.com/a.png"

    monkeypatch.setattr(storage._client, "generate_presigned_url", signing_that_needs_the_loop)

    async def a_loop_task() -> None:
        loop_ran.set()

    task = asyncio.create_task(a_loop_task())
    url = await storage.download_path(StoredLocation("s3", "a.png", "main"),
                                      int(time.time()) + 60)
    await task
    assert url == "https://signed.example.com/a.png", "the loop kept running while boto3 signed"
