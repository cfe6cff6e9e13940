"""Fixtures shared by every test tier: real SQLite files and a real PostgreSQL schema."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from comfy_serverless.store.store import Store

POSTGRES_URL = os.environ.get(
    "COMFY_SERVERLESS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@asynccontextmanager
async def fresh_postgres_schema() -> AsyncIterator[str]:
    """A new, empty schema in the `test` database (dropped afterwards), as a database URL."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


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
