"""The outbox's side of the store: events waiting for delivery, attempts, the delivery log."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from comfy_serverless.store.connector import Connector, Session
from comfy_serverless.store.records import WebhookDelivery, WebhookEvent

__all__ = ["WebhookOutbox"]


class WebhookOutbox:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def claim(self, owner: str, lease_seconds: float, limit: int) -> list[WebhookEvent]:
        now = time.time()
        rows = await self._db.fetch_all(
            self._sql["claim_webhook_events"],
            {"owner": owner, "now": now, "lease_expires_at": now + lease_seconds,
             "limit": limit})
        return [WebhookEvent.from_row(row) for row in rows]

    async def secret_for(self, event_id: str) -> str | None:
        row = await self._db.fetch_one(self._sql["webhook_context"], {"id": event_id})
        return row["secret"] if row else None

    async def freeze_payload(self, event_id: str, payload: str) -> str:
        """Store the event's body the first time; every attempt sends that same body."""
        await self._db.execute(self._sql["set_webhook_payload"],
                               {"id": event_id, "payload": payload})
        row = await self._db.fetch_one(self._sql["webhook_context"], {"id": event_id})
        return str(row["payload"]) if row and row["payload"] else payload

    async def record_attempt(
        self, event: WebhookEvent, owner: str, *, attempt: int, status_code: int | None,
        latency_ms: float | None, error: str | None, outcome: str, next_attempt_at: float,
    ) -> bool:
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                self._sql["webhook_attempted"],
                {"id": event.id, "owner": owner, "status": outcome, "attempts": attempt,
                 "next_attempt_at": next_attempt_at})
            if changed:
                await tx.execute(self._sql["insert_delivery"], {
                    "event_id": event.id, "attempt": attempt, "at": time.time(),
                    "status_code": status_code, "latency_ms": latency_ms, "error": error})
        return changed == 1

    async def log(self, execution_id: str
                  ) -> tuple[list[WebhookEvent], list[WebhookDelivery]]:
        params = {"execution_id": execution_id}
        events = await self._db.fetch_all(self._sql["webhook_events_for_execution"], params)
        deliveries = await self._db.fetch_all(self._sql["webhook_deliveries_for_execution"],
                                              params)
        return ([WebhookEvent.from_row(row) for row in events],
                [WebhookDelivery.from_row(row) for row in deliveries])

    async def redeliver(self, event_id: str, execution_id: str, extra_attempts: int) -> bool:
        changed = await self._db.execute(
            self._sql["redeliver_webhook"],
            {"id": event_id, "execution_id": execution_id, "now": time.time(),
             "extra_attempts": extra_attempts})
        return changed == 1

    async def add_event(self, tx: Session, execution_id: str, event_type: str,
                        data: dict[str, Any]) -> None:
        """An event that is not a status change (progress), in the caller's transaction."""
        await tx.execute(self._sql["insert_webhook_event"], {
            "id": f"evt_{secrets.token_hex(12)}", "execution_id": execution_id,
            "event_type": event_type, "data": json.dumps(data), "now": time.time()})
