"""Connectors: the only code that talks to a database driver (sqlite.py, postgres.py).

A connector executes named-parameter SQL (`:name`) and returns rows as dicts. It knows
nothing of executions or keys; that is the store's job. Driver errors are translated
there, once, into StoreError / StoreConflict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from comfy_serverless.errors import StoreError

__all__ = ["Connector", "Params", "Row", "Session", "connect"]

Row = dict[str, Any]
Params = Mapping[str, Any]


class Session(Protocol):
    """Runs statements; inside a transaction, or each on its own."""

    dialect: str

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]: ...

    async def execute(self, sql: str, params: Params | None = None) -> int: ...

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        """One statement for many parameter sets (pipelined where the driver can)."""
        ...

    async def execute_script(self, sql: str) -> None: ...


class Connector(Session, Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """A Session bound to one transaction: committed on exit, rolled back on error."""
        ...

    def listen(self, handlers: Mapping[str, Callable[[str], None]]
               ) -> AbstractAsyncContextManager[None]:
        """Call handlers[channel](payload) for each notification while the block runs."""
        ...

    async def close(self) -> None: ...


async def connect(database_url: str) -> Connector:
    """Open the connector that `database_url` names (sqlite:///path or postgresql://…)."""
    from comfy_serverless.store.postgres import PostgresConnector
    from comfy_serverless.store.sqlite import SqliteConnector

    scheme = urlparse(database_url).scheme
    if scheme == "sqlite":
        return SqliteConnector.open(Path(database_url.removeprefix("sqlite:///")))
    if scheme in ("postgres", "postgresql"):
        return await PostgresConnector.open(database_url)
    raise StoreError(f"unsupported database URL scheme {scheme!r}")
