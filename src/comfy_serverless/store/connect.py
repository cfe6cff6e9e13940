"""Opening a database by its URL. Apart from connector.py, which the drivers' modules
(sqlite.py, postgres.py) import, so that they and it do not import each other."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from comfy_serverless.errors import StoreError
from comfy_serverless.store.connector import Connector
from comfy_serverless.store.postgres import PostgresConnector
from comfy_serverless.store.sqlite import SqliteConnector

__all__ = ["connect"]


async def connect(database_url: str) -> Connector:
    """Open the connector that `database_url` names (sqlite:///path or postgresql://…)."""
    scheme = urlparse(database_url).scheme
    if scheme == "sqlite":
        return SqliteConnector.open(Path(database_url.removeprefix("sqlite:///")))
    if scheme in ("postgres", "postgresql"):
        return await PostgresConnector.open(database_url)
    raise StoreError(f"unsupported database URL scheme {scheme!r}")
