"""Fixtures shared by every test tier: real SQLite files and a real PostgreSQL schema."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import (
    EngineLayout,
    build_tiny_checkpoint,
    install_engine,
)
from comfy_serverless.model_sources import Transport
from comfy_serverless.settings import Settings
from comfy_serverless.store.store import Store
from comfy_serverless.testing import LocalService, scratch_postgres_schema
from comfy_serverless.testing_s3 import S3Server, moto_server
from tests.published_inputs import publish_shared_inputs
from tests.range_server import RangeServer, range_server
from tests.tls_server import ImageServer, LocalCertificates, image_server, make_certificates

POSTGRES_URL = os.environ.get(
    "COMFY_SERVERLESS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@asynccontextmanager
async def fresh_postgres_schema() -> AsyncIterator[str]:
    """A new, empty schema in the `test` database (dropped afterwards), as a database URL."""
    async with scratch_postgres_schema(POSTGRES_URL) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test that uses it runs once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    async with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    await opened.migrate()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 server (moto's server mode) on loopback, shared by the session."""
    with moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def test_certificates(tmp_path_factory: pytest.TempPathFactory) -> LocalCertificates:
    """A CA made for this session, and a certificate for 127.0.0.1 signed by it."""
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def https_images(test_certificates: LocalCertificates) -> Iterator[ImageServer]:
    """An https server on 127.0.0.1 that serves input images (trusted through the test CA)."""
    with image_server(test_certificates) as server:
        yield server


# Where the session's service stores outputs that ask for storage.provider s3.
SERVICE_BUCKET = "service-outputs"


# --------------------------------------------------------------------------- real ComfyUI
# A real service, as a new user runs it: `comfy-serverless serve` over a real ComfyUI on the
# CPU. The engine is installed on first use and reused afterwards; the tiny random-weight
# SD1.5 checkpoint is built once and cached in the engine's models folder.


@pytest.fixture(scope="session")
def engine_layout() -> EngineLayout:
    layout = install_engine(EngineLayout(Settings().engine_dir))
    build_tiny_checkpoint(layout)
    return layout


@pytest.fixture(scope="session")
def service(engine_layout: EngineLayout, tmp_path_factory: pytest.TempPathFactory,
            s3_server: S3Server, test_certificates: LocalCertificates
            ) -> Iterator[LocalService]:
    data_dir = tmp_path_factory.mktemp("service-data")
    publish_shared_inputs(data_dir)
    s3_server.create_bucket(SERVICE_BUCKET)
    env = {"COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1",
           "COMFY_SERVERLESS_WEBHOOK_REQUIRE_HTTPS": "false",
           "COMFY_SERVERLESS_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
           "COMFY_SERVERLESS_WEBHOOK_BACKOFF_SECONDS": "0.1",
           "COMFY_SERVERLESS_RETENTION_INTERVAL": "0.5",
           "COMFY_SERVERLESS_INPUT_CA_BUNDLE": str(test_certificates.ca_bundle),
           **s3_server.env(SERVICE_BUCKET)}
    with LocalService.start(data_dir, engine_layout.root, extra_env=env) as running:
        yield running


@pytest.fixture(scope="session")
def api_key(service: LocalService) -> str:
    return service.new_unthrottled_key()


@pytest.fixture
async def api(service: LocalService, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=service.base_url, headers=headers,
                                 timeout=30) as client:
        yield client


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Addresses a test names are data for the address policy, never contacted: any
    attempt to connect, and any name lookup that could leave the machine (all but a
    literal address or localhost), fails the test."""
    def refuse(*args: object) -> None:
        raise AssertionError("the policy tried to connect")

    real_getaddrinfo = socket.getaddrinfo

    def literal_lookups_only(host: bytes | str | None, *args: Any, **kwargs: Any) -> Any:
        text = host.decode() if isinstance(host, bytes) else str(host)
        if text != "localhost" and not _is_literal(text):
            raise AssertionError(f"the policy looked up {text!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", literal_lookups_only)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def models(test_certificates: LocalCertificates) -> Iterator[RangeServer]:
    """A loopback https server (the session's test CA) that serves model files."""
    with range_server(test_certificates) as server:
        yield server


@pytest.fixture
def transport(test_certificates: LocalCertificates) -> Transport:
    """The model cache's transport, trusting the test CA, in small chunks (many reads)."""
    return Transport(ssl.create_default_context(cafile=str(test_certificates.ca_bundle)),
                     timeout=10, chunk_bytes=1 << 14)
