"""PostgreSQL, for a fleet: an asyncpg pool; `:name` parameters become `$n`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from comfy_serverless.errors import StoreConflict, StoreError
from comfy_serverless.store.connector import Params, Row

__all__ = ["PostgresConnector"]

_NAMED_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")



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
