-- Named queries shared by SQLite and PostgreSQL. A dialect file may override a name, and
-- {{row_lock}} becomes the dialect's row lock (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite
-- needs none, its claims run in BEGIN IMMEDIATE transactions); {{row_lock_of_c}} locks only
-- the rows of the table aliased `c` in a join.
-- Every state change says what it expects (status, lease owner, attempt): a guarded update.

-- name: insert_api_key
INSERT INTO api_keys (id, prefix, secret_hash, kind, tier, is_admin, name, created_at,
                      custom_limits)
VALUES (:id, :prefix, :secret_hash, :kind, :tier, :is_admin, :name, :created_at,
        :custom_limits);

-- name: api_key_by_prefix
SELECT * FROM api_keys WHERE prefix = :prefix;

-- name: touch_api_key
UPDATE api_keys SET last_used_at = :now WHERE id = :id;

-- name: insert_execution
INSERT INTO executions (
    id, api_key_id, status, priority, requested_priority, workflow, options, signature,
    webhook_url, webhook_destination, webhook_secret, webhook_max_retries, client_id,
    submitted_at, max_attempts, total_nodes, allowed_gpu_types, required_models
) VALUES (
    :id, :api_key_id, 'queued', :priority, :priority, :workflow, :options, :signature,
    :webhook_url, :webhook_destination, :webhook_secret, :webhook_max_retries, :client_id,
    :submitted_at, :max_attempts, :total_nodes, :allowed_gpu_types, :required_models
);

-- name: execution_for_key
SELECT * FROM executions WHERE id = :id AND api_key_id = :api_key_id;

-- name: execution_by_id
SELECT * FROM executions WHERE id = :id;

-- name: queue_position
SELECT COUNT(*) AS ahead FROM executions
WHERE status = 'queued'
  AND (priority > :priority OR (priority = :priority AND submitted_at < :submitted_at)
       OR (priority = :priority AND submitted_at = :submitted_at AND id < :id));

-- name: _claim_update
-- (A fragment of the claims below: the write of every claim.)
UPDATE executions
SET status = 'processing', worker_id = :worker_id, lease_owner = :worker_id,
    lease_expires_at = :lease_expires_at, attempt = attempt + 1, started_at = :now,
    progress = 0, current_node = NULL, current_node_id = NULL, current_step = NULL,
    total_steps = NULL, completed_nodes = 0, engine_prompt_id = :engine_prompt_id,
    resource_allocation = :resource_allocation

-- name: _ready_for_worker
-- (A fragment: a queued row `x` that is due and whose allowed_gpu_types, a JSON array or
-- NULL for any, names the worker's GPU type or "all". :gpu_pattern is the LIKE pattern of
-- its quoted name; written as CASE so that PostgreSQL's estimate, and so its claim-order
-- index scan, does not change with it.)
x.status = 'queued' AND (x.not_before IS NULL OR x.not_before <= :now)
AND CASE WHEN x.allowed_gpu_types IS NULL THEN TRUE
         ELSE lower(x.allowed_gpu_types) LIKE :gpu_pattern ESCAPE '\'
              OR lower(x.allowed_gpu_types) LIKE '%"all"%' END

-- name: _strict_pick
-- (A fragment: the next row in strict claim order, priority then submission time.)
SELECT x.id FROM executions x
WHERE {{> _ready_for_worker}}
ORDER BY x.priority DESC, x.submitted_at, x.id
LIMIT 1
{{row_lock}}

-- name: claim_next
-- The best job this worker may run, in one statement.
-- 1. Model affinity (only when the worker has warm models): among the first affinity_window
--    jobs in strict order, the oldest one of the top priority that was submitted at most
--    affinity_max_wait seconds after the oldest of them and whose models are all warm here.
--    A job is thus only ever overtaken by jobs that arrived shortly after it.
-- 2. Otherwise, and whenever 1 finds nothing unlocked: the strict pick (so a busy window
--    never makes the queue look empty).
{{> _claim_update}}
WHERE id = COALESCE(
    (WITH candidates AS (
         SELECT x.id, x.priority, x.submitted_at FROM executions x
         WHERE {{> _ready_for_worker}}
         ORDER BY x.priority DESC, x.submitted_at, x.id
         LIMIT :affinity_window
     ), head AS (
         SELECT priority, submitted_at FROM candidates
         ORDER BY priority DESC, submitted_at, id LIMIT 1
     )
     -- CROSS JOIN: SQLite reads the few candidates first, not every queued row.
     SELECT c.id FROM head h CROSS JOIN candidates k CROSS JOIN executions c
     WHERE CAST(:warm_models AS TEXT) <> '[]'
       AND c.id = k.id AND c.status = 'queued' AND k.priority = h.priority
       AND k.submitted_at <= h.submitted_at + :affinity_max_wait
       AND c.required_models IS NOT NULL AND c.required_models <> '[]'
       AND NOT EXISTS (
           SELECT 1 FROM {{json_items}}(CAST(c.required_models AS {{json}})) AS needed
           WHERE needed.value NOT IN (
               SELECT warm.value FROM {{json_items}}(CAST(:warm_models AS {{json}})) AS warm))
     ORDER BY k.submitted_at, k.id
     LIMIT 1
     {{row_lock_of_c}}),
    ({{> _strict_pick}})
)
RETURNING *;

-- name: claim_next_in_order
-- claim_next for a worker with nothing warm, where affinity has nothing to prefer: the
-- strict pick alone, a statement the planner plans in a fraction of the time.
{{> _claim_update}}
WHERE id = ({{> _strict_pick}})
RETURNING *;

-- name: renew_lease
UPDATE executions SET lease_expires_at = :lease_expires_at
WHERE id = :id AND status = 'processing' AND lease_owner = :worker_id AND attempt = :attempt;

-- name: set_engine_prompt
UPDATE executions SET engine_prompt_id = :engine_prompt_id, resource_allocation = :resource_allocation
WHERE id = :id AND status = 'processing' AND lease_owner = :worker_id AND attempt = :attempt;

-- name: record_progress
UPDATE executions
SET progress = :progress, current_node = :current_node, current_node_id = :current_node_id,
    current_step = :current_step, total_steps = :total_steps, completed_nodes = :completed_nodes,
    engine_metrics = COALESCE(:engine_metrics, engine_metrics)
WHERE id = :id AND status = 'processing' AND lease_owner = :worker_id AND attempt = :attempt;

-- name: complete_execution
UPDATE executions
SET status = 'completed', finished_at = :now, progress = 1, completed_nodes = total_nodes,
    current_step = :current_step, total_steps = :total_steps, current_node = NULL,
    current_node_id = NULL, gpu_time = :gpu_time, engine_metrics = :engine_metrics,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND status = 'processing' AND lease_owner = :worker_id AND attempt = :attempt;

-- name: fail_execution
UPDATE executions
SET status = 'failed', finished_at = :now, error = :error, gpu_time = :gpu_time,
    engine_metrics = :engine_metrics, lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND status = 'processing' AND lease_owner = :worker_id AND attempt = :attempt;

-- name: requeue_execution
UPDATE executions
SET status = 'queued', not_before = :not_before, error = :error, lease_owner = NULL,
    lease_expires_at = NULL, worker_id = NULL
WHERE id = :id AND status = 'processing' AND lease_owner = :worker_id AND attempt = :attempt;

-- name: cancel_execution
UPDATE executions
SET status = 'cancelled', finished_at = :now, cancel_reason = :reason,
    lease_expires_at = NULL
WHERE id = :id AND api_key_id = :api_key_id AND status IN ('queued', 'processing')
RETURNING *;

-- name: execution_status_for_worker
SELECT status, lease_owner, attempt FROM executions WHERE id = :id;

-- name: insert_event
INSERT INTO execution_events (execution_id, at, event, node_id, message, details)
VALUES (:execution_id, :at, :event, :node_id, :message, :details);

-- name: events_for_execution
SELECT at, event, node_id, message, details FROM execution_events
WHERE execution_id = :execution_id ORDER BY id;

-- name: insert_output
INSERT INTO outputs (
    id, execution_id, node_id, output_type, intermediate, filename, content_type, size_bytes,
    width, height, format, storage_provider, storage_bucket, storage_key, created_at,
    expires_at, public_access
) VALUES (
    :id, :execution_id, :node_id, :output_type, :intermediate, :filename, :content_type,
    :size_bytes, :width, :height, :format, :storage_provider, :storage_bucket, :storage_key,
    :created_at, :expires_at, :public_access
);

-- name: outputs_for_execution
SELECT * FROM outputs WHERE execution_id = :execution_id ORDER BY created_at, id;

-- name: upsert_worker
INSERT INTO workers (id, started_at, heartbeat_at, state, gpu_type, system_stats,
                     current_execution_id, region, warm_models)
VALUES (:id, :now, :now, :state, :gpu_type, :system_stats, :current_execution_id, :region,
        :warm_models)
ON CONFLICT (id) DO UPDATE SET
    heartbeat_at = excluded.heartbeat_at, state = excluded.state,
    gpu_type = excluded.gpu_type,
    system_stats = COALESCE(excluded.system_stats, workers.system_stats),
    current_execution_id = excluded.current_execution_id, region = excluded.region,
    warm_models = excluded.warm_models;

-- name: live_worker_count
SELECT COUNT(*) AS live FROM workers WHERE heartbeat_at >= :since AND state <> 'stopped';

-- name: average_processing_time
SELECT AVG(finished_at - started_at) AS seconds, COUNT(*) AS samples FROM (
    SELECT finished_at, started_at FROM executions
    WHERE status = 'completed' AND (CAST(:signature AS TEXT) IS NULL OR signature = :signature)
    ORDER BY finished_at DESC
    LIMIT 50
) AS recent;

-- name: insert_catalog
INSERT INTO node_catalogs (hash, object_info, created_at) VALUES (:hash, :object_info, :now)
ON CONFLICT (hash) DO NOTHING;

-- name: set_worker_catalog
UPDATE workers SET catalog_hash = :hash WHERE id = :worker_id;

-- name: catalog_hashes_since
SELECT DISTINCT catalog_hash AS hash FROM workers
WHERE catalog_hash IS NOT NULL AND heartbeat_at >= :since;

-- name: catalog_by_hash
SELECT object_info FROM node_catalogs WHERE hash = :hash;

-- name: expired_leases
SELECT id, lease_owner, attempt, max_attempts FROM executions
WHERE status = 'processing' AND lease_expires_at < :now
ORDER BY lease_expires_at
LIMIT :limit;

-- name: rescue_requeue
UPDATE executions
SET status = 'queued', not_before = :not_before, error = :error, lease_owner = NULL,
    lease_expires_at = NULL, worker_id = NULL
WHERE id = :id AND status = 'processing' AND lease_owner = :worker_id AND attempt = :attempt
  AND lease_expires_at < :now;

-- name: rescue_fail
UPDATE executions
SET status = 'failed', finished_at = :now, error = :error, lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = :id AND status = 'processing' AND lease_owner = :worker_id AND attempt = :attempt
  AND lease_expires_at < :now;

-- name: hand_back
UPDATE executions
SET status = 'queued', attempt = attempt - 1, not_before = NULL, lease_owner = NULL,
    lease_expires_at = NULL, worker_id = NULL
WHERE id = :id AND status = 'processing' AND lease_owner = :worker_id AND attempt = :attempt;

-- name: notify
SELECT pg_notify(:channel, :payload);

-- name: age_queued
-- The starvation guard: a queued execution gains one priority level for every
-- :aging_seconds it has waited, up to 10.
UPDATE executions SET priority = priority + 1
WHERE status = 'queued' AND priority < 10
  AND submitted_at < :now - (priority - requested_priority + 1) * :aging_seconds;

-- name: queued_above
SELECT x.id FROM executions x
WHERE x.priority > :priority AND {{> _ready_for_worker}}
LIMIT 1;

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

-- name: get_state
SELECT value FROM system_state WHERE key = :key;

-- name: compare_and_set_state
UPDATE system_state SET value = :new WHERE key = :key AND value = :old;

-- name: worker_catalog_hash
SELECT catalog_hash FROM workers WHERE id = :worker_id;

-- name: queue_totals
SELECT status, COUNT(*) AS count FROM executions
WHERE status IN ('queued', 'processing') GROUP BY status;

-- name: queue_breakdown
SELECT priority, COUNT(*) AS count, AVG(:now - submitted_at) AS avg_wait
FROM executions WHERE status = 'queued' GROUP BY priority ORDER BY priority DESC;

-- name: recent_wait_time
SELECT AVG(started_at - submitted_at) AS seconds FROM executions
WHERE started_at IS NOT NULL AND started_at >= :since;

-- name: recent_processing_time
SELECT AVG(finished_at - started_at) AS seconds FROM executions
WHERE status = 'completed' AND finished_at >= :since;

-- name: live_workers
SELECT id, state, gpu_type, system_stats FROM workers
WHERE heartbeat_at >= :since AND state <> 'stopped' ORDER BY id;

-- name: executions_by_status
SELECT status, COUNT(*) AS count FROM executions GROUP BY status;

-- name: queue_depth_by_priority
SELECT priority, COUNT(*) AS count FROM executions WHERE status = 'queued' GROUP BY priority;

-- name: completed_durations
SELECT started_at - submitted_at AS wait, finished_at - started_at AS work
FROM executions WHERE status = 'completed';

-- name: webhook_deliveries_by_outcome
SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered' ELSE 'failed' END AS outcome,
       COUNT(*) AS count
FROM webhook_deliveries GROUP BY 1;

-- name: model_loads
SELECT COUNT(*) AS count FROM execution_events WHERE event = 'model_loaded';
