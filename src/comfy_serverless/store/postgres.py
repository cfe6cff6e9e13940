"""PostgreSQL, for a fleet: an asyncpg pool; `:name` parameters become `$n`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from comfy_serverless.store.connector import Params, Row, translated_driver_errors

__all__ = ["PostgresConnector"]

log = logging.getLogger(__name__)

_LISTEN_READY_SECONDS = 5.0

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
        with translated_driver_errors():
            record = await self._executor.fetchrow(query, *args)
        return dict(record) if record is not None else None

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        query, args = _bind(sql, params)
        with translated_driver_errors():
            records = await self._executor.fetch(query, *args)
        return [dict(record) for record in records]

    async def execute(self, sql: str, params: Params | None = None) -> int:
        query, args = _bind(sql, params)
        with translated_driver_errors():
            status = await self._executor.execute(query, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        query, names = _to_positional(sql)
        with translated_driver_errors():
            await self._executor.executemany(query, [[row[n] for n in names] for row in rows])

    async def execute_script(self, sql: str) -> None:
        with translated_driver_errors():
            await self._executor.execute(sql)


def _bind(sql: str, params: Params | None) -> tuple[str, list[Any]]:
    query, names = _to_positional(sql)
    values = params or {}
    return query, [values[name] for name in names]


class PostgresConnector(_PostgresSession):
    dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        super().__init__(pool)
        self._pool = pool
        self._url = url

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10) -> PostgresConnector:
        with translated_driver_errors():
            pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size,
                                             reset=_keep_session)
        return cls(pool, url)

    @asynccontextmanager
    async def listen(self, handlers: Mapping[str, Callable[[str], None]],
                     on_listening: Callable[[bool], None] | None = None
                     ) -> AsyncIterator[None]:
        """LISTEN on a dedicated connection, re-established if it drops, while the block runs.
        A notification missed meanwhile is caught by the callers' polling."""
        ready = asyncio.Event()
        task = asyncio.create_task(self._listen_forever(handlers, ready, on_listening),
                                   name="pg-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), _LISTEN_READY_SECONDS)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen_forever(self, handlers: Mapping[str, Callable[[str], None]],
                              ready: asyncio.Event,
                              on_listening: Callable[[bool], None] | None) -> None:
        while True:
            try:
                await self._listen_once(handlers, ready, on_listening or _ignore)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN connection lost: %s", exc)
            await asyncio.sleep(1.0)

    async def _listen_once(self, handlers: Mapping[str, Callable[[str], None]],
                           ready: asyncio.Event, on_listening: Callable[[bool], None]
                           ) -> None:
        """Listen on one connection until it closes."""
        connection = await asyncpg.connect(self._url)
        closed = asyncio.Event()
        connection.add_termination_listener(lambda _: closed.set())
        try:
            for channel, handler in handlers.items():
                await connection.add_listener(channel, _adapter(handler))
            ready.set()
            on_listening(True)
            await closed.wait()
        finally:
            on_listening(False)
            with contextlib.suppress(Exception):
                await connection.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresSession]:
        """Acquiring the connection, BEGIN and COMMIT are translated too: a server that
        restarts fails them with the store's StoreUnavailable, like any statement."""
        with translated_driver_errors():
            async with self._pool.acquire() as connection, connection.transaction():
                yield _PostgresSession(connection)

    async def close(self) -> None:
        await self._pool.close()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a pooled connection needs between two uses: nothing. asyncpg's default reset
    (unlock session advisory locks, close cursors, UNLISTEN, RESET ALL) is one more round
    trip after every query, and this store leaves no session state behind: its advisory
    locks are transaction-scoped, LISTEN has its own connection, and it never uses SET."""


def _ignore(listening: bool) -> None:
    """No one needs to know when the LISTEN connection comes or goes."""


def _adapter(handler: Callable[[str], None]) -> Callable[..., None]:
    def on_notification(connection: Any, pid: int, channel: str, payload: str) -> None:
        handler(payload)

    return on_notification
