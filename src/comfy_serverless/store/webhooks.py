"""The outbox's side of the store: events waiting for delivery, attempts, the delivery log."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from comfy_serverless.outbound_urls import destination_of
from comfy_serverless.store.connector import Connector, Session
from comfy_serverless.store.records import WebhookDelivery, WebhookEvent

__all__ = ["WebhookOutbox"]


class WebhookOutbox:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def claim(self, owner: str, lease_seconds: float, limit: int,
                    per_destination: int = 4, per_key: int = 8) -> list[WebhookEvent]:
        """Up to `limit` due events, never more than `per_destination` in flight to one
        destination (canonical scheme://host:port) nor `per_key` for one API key (counting
        every dispatcher's)."""
        now = time.time()
        rows = await self._db.fetch_all(
            self._sql["claim_webhook_events"],
            {"owner": owner, "now": now, "lease_expires_at": now + lease_seconds,
             "limit": limit, "scan": limit * 4, "per_destination": per_destination,
             "per_key": per_key})
        return [WebhookEvent.from_row(row) for row in rows]

    async def delivery_secret(self, event_id: str, owner: str) -> tuple[bool, str | None]:
        """Whether `owner` still holds the event (its endpoint was not deleted meanwhile),
        and the secret to sign it with."""
        row = await self._db.fetch_one(self._sql["webhook_context"], {"id": event_id})
        if row is None or row["status"] != "delivering" or row["lease_owner"] != owner:
            return False, None
        return True, row["secret"]

    async def freeze_payload(self, event_id: str, payload: str) -> str:
        """Store the event's body the first time; every attempt sends that same body."""
        await self._db.execute(self._sql["set_webhook_payload"],
                               {"id": event_id, "payload": payload})
        row = await self._db.fetch_one(self._sql["webhook_context"], {"id": event_id})
        return str(row["payload"]) if row and row["payload"] else payload

    async def record_attempt(
        self, event: WebhookEvent, owner: str, *, attempt: int, status_code: int | None,
        latency_ms: float | None, error: str | None, outcome: str, next_attempt_at: float,
        response: tuple[str, bool] | None = None,
    ) -> bool:
        """Record one attempt; `response` is the start of the receiver's reply, and whether
        it went on past that."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                self._sql["webhook_attempted"],
                {"id": event.id, "owner": owner, "status": outcome, "attempts": attempt,
                 "next_attempt_at": next_attempt_at})
            if changed:
                await tx.execute(self._sql["insert_delivery"], {
                    "event_id": event.id, "attempt": attempt, "at": time.time(),
                    "status_code": status_code, "latency_ms": latency_ms, "error": error,
                    "response_body": response[0] if response else None,
                    "response_truncated": int(response[1]) if response else None})
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

    # ------------------------------------------------------------------ registered endpoints

    async def register(self, api_key_id: str, url: str, secret: str | None,
                       events: list[str], max_endpoints: int) -> str | None:
        """The new endpoint's id; None when the key already has `max_endpoints`."""
        endpoint_id = f"whe_{secrets.token_hex(12)}"
        async with self._db.transaction() as tx:
            await tx.fetch_one(self._sql["lock_key_endpoints"], {"api_key_id": api_key_id})
            inserted = await tx.execute(self._sql["insert_endpoint"], {
                "id": endpoint_id, "api_key_id": api_key_id, "url": url,
                "destination": destination_of(url), "secret": secret,
                "events": json.dumps(events), "now": time.time(),
                "max_endpoints": max_endpoints})
        return endpoint_id if inserted == 1 else None

    async def endpoints(self, api_key_id: str) -> list[dict[str, Any]]:
        rows = await self._db.fetch_all(self._sql["endpoints_for_key"],
                                        {"api_key_id": api_key_id})
        return [{**row, "events": json.loads(row["events"])} for row in rows]

    async def unregister(self, endpoint_id: str, api_key_id: str) -> bool:
        """Delete a key's endpoint: its undelivered events are cancelled, its log is kept."""
        params = {"id": endpoint_id, "api_key_id": api_key_id}
        async with self._db.transaction() as tx:
            await tx.execute(self._sql["detach_endpoint_events"], params)
            return await tx.execute(self._sql["delete_endpoint"], params) == 1

    async def broadcast(self, event_type: str, data: dict[str, Any], max_retries: int) -> int:
        """A system event, for every active endpoint whose filter takes it; how many."""
        rows = await self._db.fetch_all(self._sql["active_endpoints"])
        targets = [row for row in rows
                   if {event_type, "*"} & set(json.loads(row["events"]))]
        now, body = time.time(), json.dumps(data)
        await self._db.execute_many(self._sql["insert_system_event"], [
            {"id": f"evt_{secrets.token_hex(12)}", "endpoint_id": row["id"], "url": row["url"],
             "destination": row["destination"] or destination_of(row["url"]),
             "api_key_id": row["api_key_id"],
             "event_type": event_type, "data": body, "now": now, "max_retries": max_retries}
            for row in targets])
        return len(targets)

    async def disable_endpoint_of(self, event_id: str, reason: str) -> None:
        await self._db.execute(self._sql["disable_endpoint_of_event"],
                               {"event_id": event_id, "now": time.time(), "reason": reason})

    async def add_event(self, tx: Session, execution_id: str, event_type: str,
                        data: dict[str, Any]) -> None:
        """An event that is not a status change (progress), in the caller's transaction."""
        await tx.execute(self._sql["insert_webhook_event"], {
            "id": f"evt_{secrets.token_hex(12)}", "execution_id": execution_id,
            "event_type": event_type, "data": json.dumps(data), "now": time.time()})
