-- Webhooks: the outbox (events, attempts, delivery log) and registered endpoints.
-- Used by store/webhooks.py.

-- name: claim_webhook_events
-- Due events, oldest first, never one whose execution has an earlier event still undelivered
-- (each execution's events arrive in order), never more than :per_destination events in
-- flight to one destination (the canonical scheme://host:port stored with the event, however
-- the URL spells it) and never more than :per_key events in flight for one API key, counting
-- those other dispatchers hold: a slow or dead receiver holds back only its own events, a
-- tenant with many receivers only its own share, and waiting events are skipped, not scanned
-- in the way of others'. The windows keep one batch within both caps as well.
UPDATE webhook_events
SET status = 'delivering', lease_owner = :owner, lease_expires_at = :lease_expires_at
WHERE id IN (
    WITH busy AS (
        SELECT COALESCE(b.destination, b.url) AS destination,
               COALESCE(b.api_key_id, '') AS api_key_id
        FROM webhook_events b
        WHERE b.status = 'delivering' AND b.lease_expires_at >= :now
    ), destination_busy AS (
        SELECT destination, COUNT(*) AS busy FROM busy GROUP BY destination
    ), key_busy AS (
        SELECT api_key_id, COUNT(*) AS busy FROM busy GROUP BY api_key_id
    )
    SELECT ranked.id FROM (
        SELECT due.id, due.next_attempt_at, due.seq, COALESCE(f.busy, 0) AS busy,
               COALESCE(k.busy, 0) AS key_busy,
               ROW_NUMBER() OVER (PARTITION BY due.destination
                                  ORDER BY due.next_attempt_at, due.seq) AS place,
               ROW_NUMBER() OVER (PARTITION BY due.api_key_id
                                  ORDER BY due.next_attempt_at, due.seq) AS key_place
        FROM (
            SELECT e.id, COALESCE(e.destination, e.url) AS destination,
                   COALESCE(e.api_key_id, '') AS api_key_id, e.next_attempt_at, e.seq
            FROM webhook_events e
            WHERE e.status IN ('pending', 'delivering') AND e.next_attempt_at <= :now
              AND (e.lease_expires_at IS NULL OR e.lease_expires_at < :now)
              AND NOT EXISTS (
                  SELECT 1 FROM webhook_events earlier
                  WHERE earlier.execution_id = e.execution_id AND earlier.seq < e.seq
                    AND earlier.status IN ('pending', 'delivering'))
              AND COALESCE(e.destination, e.url) NOT IN (
                  SELECT destination FROM destination_busy WHERE busy >= :per_destination)
              AND COALESCE(e.api_key_id, '') NOT IN (
                  SELECT api_key_id FROM key_busy WHERE busy >= :per_key)
            ORDER BY e.next_attempt_at, e.seq
            LIMIT :scan
            {{row_lock}}
        ) due
        LEFT JOIN destination_busy f ON f.destination = due.destination
        LEFT JOIN key_busy k ON k.api_key_id = due.api_key_id
    ) ranked
    WHERE ranked.place + ranked.busy <= :per_destination
      AND ranked.key_place + ranked.key_busy <= :per_key
    ORDER BY ranked.next_attempt_at, ranked.seq
    LIMIT :limit
)
RETURNING *;

-- name: webhook_context
SELECT w.*, COALESCE(x.webhook_secret, p.secret) AS secret FROM webhook_events w
LEFT JOIN executions x ON x.id = w.execution_id
LEFT JOIN webhook_endpoints p ON p.id = w.endpoint_id
WHERE w.id = :id;

-- name: set_webhook_payload
UPDATE webhook_events SET payload = :payload WHERE id = :id AND payload IS NULL;

-- name: insert_delivery
INSERT INTO webhook_deliveries (event_id, attempt, at, status_code, latency_ms, error,
                                response_body, response_truncated)
VALUES (:event_id, :attempt, :at, :status_code, :latency_ms, :error, :response_body,
        :response_truncated);

-- name: webhook_attempted
UPDATE webhook_events
SET status = :status, attempts = :attempts, next_attempt_at = :next_attempt_at,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_owner = :owner;

-- name: webhook_events_for_execution
SELECT * FROM webhook_events WHERE execution_id = :execution_id ORDER BY seq;

-- name: webhook_deliveries_for_execution
SELECT d.* FROM webhook_deliveries d
JOIN webhook_events e ON e.id = d.event_id
WHERE e.execution_id = :execution_id ORDER BY d.id;

-- name: redeliver_webhook
UPDATE webhook_events
SET status = 'pending', next_attempt_at = :now, max_retries = attempts + :extra_attempts,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND execution_id = :execution_id AND status IN ('delivered', 'failed');

-- name: insert_webhook_event
INSERT INTO webhook_events (id, execution_id, url, destination, api_key_id, event_type, data,
                            created_at, max_retries, next_attempt_at)
SELECT :id, x.id, x.webhook_url, x.webhook_destination, x.api_key_id, :event_type, :data, :now,
       COALESCE(x.webhook_max_retries, 3), :now
FROM executions x WHERE x.id = :execution_id AND x.webhook_url IS NOT NULL;

-- name: lock_key_endpoints
-- Taken before insert_endpoint, in its transaction: registrations of one key run one at a
-- time, so that each counts the others' endpoints (under READ COMMITTED two concurrent
-- inserts would each count 9 and make 11). SQLite writes run one at a time anyway.
SELECT id FROM api_keys WHERE id = :api_key_id {{for_update}};

-- name: insert_endpoint
-- Nothing is inserted once the key has :max_endpoints endpoints (after lock_key_endpoints).
INSERT INTO webhook_endpoints (id, api_key_id, url, destination, secret, events, created_at)
SELECT :id, :api_key_id, :url, :destination, :secret, :events, :now
WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE api_key_id = :api_key_id)
      < :max_endpoints;

-- name: endpoints_for_key
SELECT id, url, events, created_at, disabled_at, disabled_reason FROM webhook_endpoints
WHERE api_key_id = :api_key_id ORDER BY created_at;

-- name: detach_endpoint_events
-- Before an endpoint is deleted: its undelivered events are cancelled (never sent), and
-- every event of it stays in the log, detached from the endpoint.
UPDATE webhook_events
SET endpoint_id = NULL, lease_owner = NULL, lease_expires_at = NULL,
    status = CASE WHEN status IN ('pending', 'delivering') THEN 'cancelled' ELSE status END
WHERE endpoint_id = :id
  AND EXISTS (SELECT 1 FROM webhook_endpoints p WHERE p.id = :id AND p.api_key_id = :api_key_id);

-- name: delete_endpoint
DELETE FROM webhook_endpoints WHERE id = :id AND api_key_id = :api_key_id;

-- name: active_endpoints
SELECT id, api_key_id, url, destination, events FROM webhook_endpoints
WHERE disabled_at IS NULL;

-- name: insert_system_event
INSERT INTO webhook_events (id, endpoint_id, url, destination, api_key_id, event_type, data,
                            payload, created_at, max_retries, next_attempt_at)
VALUES (:id, :endpoint_id, :url, :destination, :api_key_id, :event_type, :data, :data, :now,
        :max_retries, :now);

-- name: disable_endpoint_of_event
UPDATE webhook_endpoints SET disabled_at = :now, disabled_reason = :reason
WHERE id = (SELECT endpoint_id FROM webhook_events WHERE id = :event_id) AND disabled_at IS NULL;
