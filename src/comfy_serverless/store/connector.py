"""Connectors: the only code that talks to a database driver (sqlite.py, postgres.py).

A connector executes named-parameter SQL (`:name`) and returns rows as dicts. It knows
nothing of executions or keys; that is the store's job. Driver errors of both drivers are
translated here, once (`translated_driver_errors`), so every caller, the API and the
background loops alike, sees only the store's own errors:

- StoreConflict: a unique key was taken;
- StoreUnavailable: the database cannot serve now, and a retry later may succeed: a
  connection refused, reset or closed (any OSError, asyncpg's InterfaceError on a closed
  connection or pool and its InternalClientError on a connection broken mid-operation,
  SQLSTATE class 08), a server shutting down or starting up (57P01-03),
  too many connections or no disk (class 53), an I/O error (class 58); on SQLite a database
  that stays locked or busy, a disk I/O error, a file it cannot open, a closed connection;
- StoreError: anything else the driver refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, Protocol

import asyncpg

from comfy_serverless.errors import StoreConflict, StoreError, StoreUnavailable

__all__ = [
    "Connector",
    "Params",
    "Row",
    "Session",
    "store_error_for",
    "translated_driver_errors",
]

# SQLSTATE classes that mean "not now" rather than "never": connection exception, insufficient
# resources, operator intervention (shutdown, starting up, cancelled), system (I/O) error.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "58")
_UNAVAILABLE_SQLITE_MESSAGES = ("locked", "busy", "disk i/o", "unable to open", "closed")


def store_error_for(exc: BaseException) -> StoreError | None:
    """The store's error for a driver's (or the network's) exception; None for any other."""
    if isinstance(exc, StoreError):
        return None
    message = str(exc) or type(exc).__name__
    if isinstance(exc, asyncpg.UniqueViolationError) or (
            isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in message):
        return StoreConflict(message)
    if _is_unavailable(exc):
        return StoreUnavailable(message)
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | sqlite3.Error):
        return StoreError(message)
    return None


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OSError | asyncpg.InternalClientError):
        # refused, reset, timed out; or a connection whose protocol state a server going
        # away mid-operation broke ("cannot switch to state …; another operation …")
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc) or "closing" in str(exc)
    if isinstance(exc, sqlite3.OperationalError | sqlite3.ProgrammingError):
        return any(word in str(exc).lower() for word in _UNAVAILABLE_SQLITE_MESSAGES)
    return False


@contextmanager
def translated_driver_errors() -> Iterator[None]:
    """Raise the store's error in place of a driver's; let every other exception through."""
    try:
        yield
    except Exception as exc:
        mapped = store_error_for(exc)
        if mapped is None:
            raise
        raise mapped from exc

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

    def listen(self, handlers: Mapping[str, Callable[[str], None]],
               on_listening: Callable[[bool], None] | None = None
               ) -> AbstractAsyncContextManager[None]:
        """Call handlers[channel](payload) for each notification while the block runs, and
        on_listening(True/False) as the LISTEN connection comes up and goes down (never, where
        the database has no notifications)."""
        ...

    async def close(self) -> None: ...
