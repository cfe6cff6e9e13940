"""Connectors: the only code that talks to a database driver.

A connector executes named-parameter SQL (`:name`) and returns rows as dicts. It knows
nothing of executions or keys; that is the store's job. Driver errors are translated
here, once, into StoreError / StoreConflict.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlparse

import aiosqlite
import asyncpg

from comfy_serverless.errors import StoreConflict, StoreError

__all__ = ["Connector", "PostgresConnector", "Row", "Session", "SqliteConnector", "connect"]

Row = dict[str, Any]
Params = Mapping[str, Any]

_NAMED_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Session(Protocol):
    """Runs statements; inside a transaction, or each on its own."""

    dialect: str

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]: ...

    async def execute(self, sql: str, params: Params | None = None) -> int: ...

    async def execute_script(self, sql: str) -> None: ...


class Connector(Session, Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """A Session bound to one transaction: committed on exit, rolled back on error."""
        ...

    async def close(self) -> None: ...


async def connect(database_url: str) -> Connector:
    """Open the connector that `database_url` names (sqlite:///path or postgresql://…)."""
    scheme = urlparse(database_url).scheme
    if scheme == "sqlite":
        return await SqliteConnector.open(Path(database_url.removeprefix("sqlite:///")))
    if scheme in ("postgres", "postgresql"):
        return await PostgresConnector.open(database_url)
    raise StoreError(f"unsupported database URL scheme {scheme!r}")


# --------------------------------------------------------------------------- SQLite


def _sqlite_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


class _SqliteSession:
    """Statements on one aiosqlite connection; the caller holds the connection's lock."""

    dialect = "sqlite"

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        with _translate_sqlite_errors():
            async with self._connection.execute(sql, dict(params or {})) as cursor:
                row = await cursor.fetchone()
                return cast(Row | None, row)

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        with _translate_sqlite_errors():
            async with self._connection.execute(sql, dict(params or {})) as cursor:
                return cast(list[Row], list(await cursor.fetchall()))

    async def execute(self, sql: str, params: Params | None = None) -> int:
        with _translate_sqlite_errors():
            async with self._connection.execute(sql, dict(params or {})) as cursor:
                return int(cursor.rowcount)

    async def execute_script(self, sql: str) -> None:
        # Not executescript(): it would COMMIT an open transaction first.
        with _translate_sqlite_errors():
            for statement in _split_statements(sql):
                await self._connection.execute(statement)


def _split_statements(script: str) -> list[str]:
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


class SqliteConnector:
    """One writer connection (serialised by a lock) and one reader connection (WAL mode).

    Transactions start with BEGIN IMMEDIATE, so a claim takes the write lock at once and
    other processes on the same file wait (busy_timeout) instead of failing late.
    """

    dialect = "sqlite"

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = _SqliteSession(writer)
        self._reader = _SqliteSession(reader)
        self._writer_connection = writer
        self._reader_connection = reader
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteConnector:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await cls._open_connection(path)
        reader = await cls._open_connection(path)
        return cls(writer, reader)

    @staticmethod
    async def _open_connection(path: Path) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = _sqlite_row  # type: ignore[assignment]
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=10000",
            "PRAGMA foreign_keys=ON",
        ):
            await connection.execute(pragma)
        return connection

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        session, lock = self._session_for(sql)
        async with lock:
            return await session.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        session, lock = self._session_for(sql)
        async with lock:
            return await session.fetch_all(sql, params)

    async def execute(self, sql: str, params: Params | None = None) -> int:
        async with self._write_lock:
            return await self._writer.execute(sql, params)

    async def execute_script(self, sql: str) -> None:
        async with self._write_lock:
            await self._writer.execute_script(sql)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteSession]:
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    def _session_for(self, sql: str) -> tuple[_SqliteSession, asyncio.Lock]:
        is_read = sql.lstrip()[:6].upper() == "SELECT"
        if is_read:
            return self._reader, self._read_lock
        return self._writer, self._write_lock

    async def close(self) -> None:
        await self._writer_connection.close()
        await self._reader_connection.close()


class _translate_sqlite_errors:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
            raise StoreConflict(str(exc)) from exc
        if isinstance(exc, sqlite3.Error):
            raise StoreError(str(exc)) from exc


# --------------------------------------------------------------------------- PostgreSQL


@lru_cache(maxsize=512)
def _to_positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """Rewrite `:name` parameters as asyncpg's `$n`, remembering the order of names."""
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED_PARAM.sub(replace, sql), tuple(names)


class _PostgresSession:
    dialect = "postgres"

    def __init__(self, executor: Any) -> None:
        # an asyncpg Pool, or one connection (inside a transaction)
        self._executor = executor

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        query, args = _bind(sql, params)
        with _translate_postgres_errors():
            record = await self._executor.fetchrow(query, *args)
        return dict(record) if record is not None else None

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        query, args = _bind(sql, params)
        with _translate_postgres_errors():
            records = await self._executor.fetch(query, *args)
        return [dict(record) for record in records]

    async def execute(self, sql: str, params: Params | None = None) -> int:
        query, args = _bind(sql, params)
        with _translate_postgres_errors():
            status = await self._executor.execute(query, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def execute_script(self, sql: str) -> None:
        with _translate_postgres_errors():
            await self._executor.execute(sql)


def _bind(sql: str, params: Params | None) -> tuple[str, list[Any]]:
    query, names = _to_positional(sql)
    values = params or {}
    return query, [values[name] for name in names]


class PostgresConnector(_PostgresSession):
    dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10) -> PostgresConnector:
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresSession]:
        async with self._pool.acquire() as connection, connection.transaction():
            yield _PostgresSession(connection)

    async def close(self) -> None:
        await self._pool.close()


class _translate_postgres_errors:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if isinstance(exc, asyncpg.UniqueViolationError):
            raise StoreConflict(str(exc)) from exc
        if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
            raise StoreError(str(exc)) from exc
