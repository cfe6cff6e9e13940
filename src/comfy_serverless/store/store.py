"""The store: the one door to the database, for SQLite and PostgreSQL alike.

It is the only code that knows the queries and what a row means. `Store` itself only opens,
migrates and closes the database and listens for wake-ups; the work is done by its
sub-stores, one per concern, each with its own queries file (queries/<name>.sql):

- executions: the direct insert, reads, cancelling (executions.py);
- claims: the worker's claim, lease, progress and outcome, and the rescuer's (claims.py);
- access: API keys, admission of new executions, idempotency (access.py);
- workers: heartbeats, the live fleet, node catalogs, shared state (workers.py);
- metrics: the aggregates of /metrics, the queue status and the estimates (metrics.py);
- webhooks, models, retention, history, fleet, stream: the outbox, the model registry,
  output retention, execution retention, fleet figures and identity, the event stream.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from comfy_serverless.store.access import AccessStore
from comfy_serverless.store.claims import ClaimStore
from comfy_serverless.store.connect import connect
from comfy_serverless.store.connector import Connector
from comfy_serverless.store.events import ExecutionStream
from comfy_serverless.store.executions import ExecutionStore
from comfy_serverless.store.fleet import FleetStore
from comfy_serverless.store.metrics import MetricsStore
from comfy_serverless.store.migrations import apply_migrations
from comfy_serverless.store.models import ModelRegistry
from comfy_serverless.store.retention import ExecutionRetention, OutputRetention
from comfy_serverless.store.sql_loader import load_queries
from comfy_serverless.store.webhooks import WebhookOutbox
from comfy_serverless.store.workers import WorkerStore
from comfy_serverless.store.writing import CANCEL_CHANNEL, WORK_CHANNEL

__all__ = ["CANCEL_CHANNEL", "WORK_CHANNEL", "Store"]


class Store:
    def __init__(self, connector: Connector) -> None:
        self._db = connector
        queries = load_queries(connector.dialect)
        self.webhooks = WebhookOutbox(connector, queries)
        self.executions = ExecutionStore(connector, queries)
        self.claims = ClaimStore(connector, queries, self.webhooks)
        self.access = AccessStore(connector, queries)
        self.workers = WorkerStore(connector, queries)
        self.metrics = MetricsStore(connector, queries)
        self.models = ModelRegistry(connector, queries)
        self.retention = OutputRetention(connector, queries)
        self.history = ExecutionRetention(connector, queries)
        self.fleet = FleetStore(connector, queries)
        self.stream = ExecutionStream(connector, queries)

    @classmethod
    async def open(cls, database_url: str) -> Store:
        return cls(await connect(database_url))

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @property
    def connector(self) -> Connector:
        """The database itself, for tools that run statements of their own (benchmarks,
        the tests' setup); the service's code goes through the sub-stores."""
        return self._db

    async def migrate(self) -> list[int]:
        return await apply_migrations(self._db)

    async def close(self) -> None:
        await self._db.close()

    def listen(self, *, on_work: Callable[[], None], on_cancel: Callable[[str], None]
               ) -> AbstractAsyncContextManager[None]:
        """Wake-ups from other processes (PostgreSQL LISTEN/NOTIFY; a no-op on SQLite)."""
        return self._db.listen({WORK_CHANNEL: lambda _: on_work(), CANCEL_CHANNEL: on_cancel})
