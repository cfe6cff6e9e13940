"""Both drivers' errors become the store's own, in one place (store/connector.py): what a
retry may cure is StoreUnavailable (503 with Retry-After), never a bare driver error (500)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from comfy_serverless.errors import StoreConflict, StoreError, StoreUnavailable
from comfy_serverless.store.connector import store_error_for, translated_driver_errors
from comfy_serverless.store.sqlite import SqliteConnector
from comfy_serverless.store.store import Store
from comfy_serverless.testing import free_port

UNAVAILABLE = [
    asyncpg.CannotConnectNowError("the database system is shutting down"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.InterfaceError("pool is closing"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    sqlite3.OperationalError("database is locked"),
    sqlite3.OperationalError("disk I/O error"),
    sqlite3.OperationalError("unable to open database file"),
    sqlite3.ProgrammingError("Cannot operate on a closed database."),
]


@pytest.mark.parametrize("driver_error", UNAVAILABLE, ids=repr)
def test_what_a_retry_may_cure_is_unavailable(driver_error: Exception) -> None:
    with pytest.raises(StoreUnavailable) as raised, translated_driver_errors():
        raise driver_error
    assert raised.value.__cause__ is driver_error


@pytest.mark.parametrize(("driver_error", "expected"), [
    (asyncpg.UniqueViolationError("duplicate key"), StoreConflict),
    (sqlite3.IntegrityError("UNIQUE constraint failed: api_keys.prefix"), StoreConflict),
    (asyncpg.NumericValueOutOfRangeError("value out of range"), StoreError),
    (asyncpg.InterfaceError("another operation is in progress"), StoreError),
    (sqlite3.OperationalError("no such table: executions"), StoreError),
    (sqlite3.IntegrityError("FOREIGN KEY constraint failed"), StoreError),
], ids=repr)
def test_other_driver_errors_are_the_stores_too(driver_error: Exception,
                                                expected: type[StoreError]) -> None:
    mapped = store_error_for(driver_error)
    assert type(mapped) is expected


def test_errors_that_are_not_the_drivers_pass_through() -> None:
    assert store_error_for(ValueError("a bug")) is None
    assert store_error_for(StoreUnavailable("already ours")) is None


async def test_a_postgresql_that_does_not_answer_is_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        await Store.open(f"postgresql://postgres@127.0.0.1:{free_port()}/test")


async def test_a_closed_sqlite_connection_is_unavailable(tmp_path: Path) -> None:
    connector = SqliteConnector.open(tmp_path / "store.db")
    await connector.close()
    with pytest.raises(StoreUnavailable):
        await connector.fetch_one("SELECT 1 AS one")
