"""A small, explicit migrations runner: numbered .sql files, applied in order.

One tree, as the queries: migrations/NNNN_name.sql serves both dialects, and
migrations/<dialect>/NNNN_name.sql takes its place where the dialects differ (same number,
same name, so the bookkeeping of existing databases is unchanged).

Each file runs in its own transaction and is recorded in `schema_migrations`, so running
`migrate` twice (or from two processes at once on PostgreSQL) applies each file once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from comfy_serverless.store.connector import Connector

__all__ = ["Migration", "apply_migrations", "available_migrations", "migrations_in_tree"]

log = logging.getLogger(__name__)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  DOUBLE PRECISION NOT NULL
)
"""
# One lock id for every comfy-serverless migration run on a PostgreSQL database.
_PG_ADVISORY_LOCK = 7_391_002


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations(dialect: str) -> list[Migration]:
    """Every migration for `dialect`, in order: the shared file, or the dialect's own."""
    return migrations_in_tree(resources.files("comfy_serverless.store") / "migrations", dialect)


def migrations_in_tree(folder: Traversable, dialect: str) -> list[Migration]:
    """The migrations of one tree (shared files in `folder`, overrides in folder/dialect)."""
    by_version = _migrations_in(folder)
    for version, override in _migrations_in(folder / dialect).items():
        shared = by_version.get(version)
        if shared is not None and shared.name != override.name:
            raise ValueError(f"migration {version:04d} is {shared.name!r} shared and "
                             f"{override.name!r} for {dialect}")
        by_version[version] = override
    return [by_version[version] for version in sorted(by_version)]


def _migrations_in(folder: Traversable) -> dict[int, Migration]:
    found: dict[int, Migration] = {}
    if not folder.is_dir():
        return found  # a dialect with no overrides needs no folder
    for entry in folder.iterdir():
        if entry.is_file() and entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            if int(version) in found:
                raise ValueError(f"two migrations numbered {version} in {folder}")
            found[int(version)] = Migration(int(version), name, entry.read_text())
    return found


async def apply_migrations(connector: Connector) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied now."""
    await connector.execute(_CREATE_TABLE)
    applied_now: list[int] = []
    for migration in available_migrations(connector.dialect):
        async with connector.transaction() as tx:
            if connector.dialect == "postgres":
                await tx.execute(f"SELECT pg_advisory_xact_lock({_PG_ADVISORY_LOCK})")
            done = await tx.fetch_one(
                "SELECT version FROM schema_migrations WHERE version = :version",
                {"version": migration.version},
            )
            if done is not None:
                continue
            await tx.execute_script(migration.sql)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) "
                "VALUES (:version, :name, :applied_at)",
                {"version": migration.version, "name": migration.name, "applied_at": time.time()},
            )
            applied_now.append(migration.version)
            log.info("applied migration %04d_%s", migration.version, migration.name)
    return applied_now
