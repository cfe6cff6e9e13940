"""A real S3 server on loopback, for tests and benches: moto's server mode (`moto[server]`,
a development dependency), run in its own process.

    with moto_server() as server:
        server.create_bucket("outputs")
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import httpx

from comfy_serverless.ports import free_port
from comfy_serverless.storage.s3 import S3Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Server", "moto_server"]

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self) -> S3Client:
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def s3_config(self, **overrides: Any) -> S3Config:
        """Storage settings that point at this server."""
        return S3Config(**{"endpoint_url": self.endpoint_url, "region": REGION,
                           "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
                           "addressing_style": "path", **overrides})

    def env(self, bucket: str) -> dict[str, str]:
        """The service settings that point it at this server."""
        return {"COMFY_SERVERLESS_S3_ENABLED": "true",
                "COMFY_SERVERLESS_S3_ENDPOINT_URL": self.endpoint_url,
                "COMFY_SERVERLESS_S3_BUCKET": bucket,
                "COMFY_SERVERLESS_S3_REGION": REGION,
                "COMFY_SERVERLESS_S3_ADDRESSING_STYLE": "path",
                "COMFY_SERVERLESS_S3_ACCESS_KEY_ID": ACCESS_KEY,
                "COMFY_SERVERLESS_S3_SECRET_ACCESS_KEY": SECRET_KEY}


@contextlib.contextmanager
def moto_server(timeout: float = 30) -> Iterator[S3Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = S3Server(f"http://127.0.0.1:{port}")
    try:
        _wait_ready(server.endpoint_url, process, timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("moto's server exited at start")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url + "/moto-api/", timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"moto's server did not answer within {timeout}s")
