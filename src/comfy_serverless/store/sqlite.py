"""SQLite, for one node: the embedded default.

Statements run on the event loop's own thread: on a local WAL database they take tens of
microseconds, far less than a hand-off to a driver thread costs under load. Nothing ever
blocks on another process's lock: busy_timeout is 0, and a busy database is retried with
`await asyncio.sleep`, up to a deadline. A writer connection (serialised by an asyncio lock,
transactions start with BEGIN IMMEDIATE) and a reader connection (WAL snapshot reads).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from comfy_serverless.errors import StoreUnavailable
from comfy_serverless.store.connector import Params, Row, translated_driver_errors

__all__ = ["SqliteConnector"]

T = TypeVar("T")

_BUSY_DEADLINE = 10.0
_BUSY_BACKOFF = 0.002


def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


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


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc)
    return "locked" in message or "busy" in message


async def _with_retry(operation: Callable[[], T]) -> T:
    """Run it, retrying a busy database up to a deadline; the store's errors otherwise (a
    database still busy at the deadline is StoreUnavailable)."""
    deadline: float | None = None
    while True:
        try:
            with translated_driver_errors():
                return operation()
        except StoreUnavailable as exc:  # the connector maps locked and busy to it
            cause = exc.__cause__
            if not isinstance(cause, sqlite3.OperationalError) or not _is_busy(cause):
                raise
            deadline = deadline or time.monotonic() + _BUSY_DEADLINE
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(_BUSY_BACKOFF)


class _SqliteSession:
    """Statements on one connection; whoever calls holds that connection's lock."""

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        row: Row | None = await _with_retry(
            lambda: self._connection.execute(sql, dict(params or {})).fetchone())
        return row

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        rows: list[Row] = await _with_retry(
            lambda: self._connection.execute(sql, dict(params or {})).fetchall())
        return rows

    async def execute(self, sql: str, params: Params | None = None) -> int:
        return await _with_retry(
            lambda: self._connection.execute(sql, dict(params or {})).rowcount)

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            await _with_retry(lambda: self._connection.executemany(sql, [dict(r) for r in rows]))

    async def execute_script(self, sql: str) -> None:
        # Not executescript(): it would COMMIT an open transaction first.
        for statement in _split_statements(sql):
            await self.execute(statement)


class SqliteConnector:
    dialect = "sqlite"

    def __init__(self, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self._connections = (writer, reader)
        self._writer = _SqliteSession(writer)
        self._reader = _SqliteSession(reader)
        self._write_lock = asyncio.Lock()

    @classmethod
    def open(cls, path: Path) -> SqliteConnector:
        with translated_driver_errors():
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls(cls._open_connection(path), cls._open_connection(path))

    @staticmethod
    def _open_connection(path: Path) -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.row_factory = _row
        connection.execute("PRAGMA busy_timeout=1000")
        connection.execute("PRAGMA journal_mode=WAL")
        for pragma in ("PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=0",
                       "PRAGMA foreign_keys=ON"):
            connection.execute(pragma)
        return connection

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        if _is_read(sql):
            return await self._reader.fetch_one(sql, params)
        async with self._write_lock:
            return await self._writer.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        if _is_read(sql):
            return await self._reader.fetch_all(sql, params)
        async with self._write_lock:
            return await self._writer.fetch_all(sql, params)

    async def execute(self, sql: str, params: Params | None = None) -> int:
        async with self._write_lock:
            return await self._writer.execute(sql, params)

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        async with self._write_lock:
            await self._writer.execute_many(sql, rows)

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
                self._connections[0].execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    @asynccontextmanager
    async def listen(self, handlers: Mapping[str, Callable[[str], None]],
                     on_listening: Callable[[bool], None] | None = None
                     ) -> AsyncIterator[None]:
        """SQLite has no notifications: one node uses in-process signals, others poll."""
        yield

    async def close(self) -> None:
        for connection in self._connections:
            connection.close()


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"
