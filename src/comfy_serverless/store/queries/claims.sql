-- Claims: the worker's side of an execution (claim, lease, progress, outcome) and the
-- rescuer's (expired leases, rescue, aging). Used by store/claims.py.

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
-- index scan, does not change with it. Likewise its environment: NULL for any worker, else
-- the name of the worker's (:worker_environment, NULL for a worker without one), and, when
-- the row pinned a hash prefix, the start of the worker's hash.)
x.status = 'queued' AND (x.not_before IS NULL OR x.not_before <= :now)
AND CASE WHEN x.allowed_gpu_types IS NULL THEN TRUE
         ELSE lower(x.allowed_gpu_types) LIKE :gpu_pattern ESCAPE '\'
              OR lower(x.allowed_gpu_types) LIKE '%"all"%' END
AND CASE WHEN x.environment IS NULL THEN TRUE
         WHEN x.environment_hash IS NULL THEN x.environment = :worker_environment
         ELSE x.environment = :worker_environment
              AND substr(:worker_environment_hash, 1, length(x.environment_hash))
                  = x.environment_hash END

-- name: _strict_pick
-- (A fragment: the next row in strict claim order, priority then submission time.)
SELECT x.id FROM executions x
WHERE {{> _ready_for_worker}}
ORDER BY x.priority DESC, x.submitted_at, x.id
LIMIT 1
{{row_lock}}

-- name: claim_next
-- The best job this worker may run, in one statement.
-- 1. Model affinity (only when the worker holds models): among the first affinity_window
--    jobs in strict order, those of the top priority that were submitted at most
--    affinity_max_wait seconds after the oldest of them and whose models are all on disk
--    here (:disk_models, which holds the warm ones too); of those, one whose models are all
--    warm (:warm_models) first, then the oldest. A job is thus only ever overtaken by jobs
--    that arrived shortly after it.
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
     WHERE CAST(:disk_models AS TEXT) <> '[]'
       AND c.id = k.id AND c.status = 'queued' AND k.priority = h.priority
       AND k.submitted_at <= h.submitted_at + :affinity_max_wait
       AND c.required_models IS NOT NULL AND c.required_models <> '[]'
       AND NOT EXISTS (
           SELECT 1 FROM {{json_items}}(CAST(c.required_models AS {{json}})) AS needed
           WHERE needed.value NOT IN (
               SELECT held.value FROM {{json_items}}(CAST(:disk_models AS {{json}})) AS held))
     ORDER BY CASE WHEN EXISTS (
                  SELECT 1 FROM {{json_items}}(CAST(c.required_models AS {{json}})) AS needed
                  WHERE needed.value NOT IN (
                      SELECT warm.value
                      FROM {{json_items}}(CAST(:warm_models AS {{json}})) AS warm))
              THEN 1 ELSE 0 END,
              k.submitted_at, k.id
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

-- name: execution_status_for_worker
SELECT status, lease_owner, attempt FROM executions WHERE id = :id;

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
