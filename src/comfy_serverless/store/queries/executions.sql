-- Executions: reading them (by id, for a key, queue position, log, outputs) and cancelling.
-- Used by store/executions.py.

-- name: execution_for_key
SELECT * FROM executions WHERE id = :id AND api_key_id = :api_key_id;

-- name: execution_by_id
SELECT * FROM executions WHERE id = :id;

-- name: queue_position
-- How many queued executions are ahead in claim order, counting at most :bound of them.
-- Three range scans on executions_claim_order (higher priority; same priority, earlier;
-- same priority and time, lower id), each in the index's order (so the planner takes that
-- index, not another that merely holds the queued rows) and appended under one LIMIT: the
-- count reads at most :bound index entries however deep the queue is.
SELECT COUNT(*) AS ahead FROM (
    SELECT one FROM (
        SELECT 1 AS one FROM executions
        WHERE status = 'queued' AND priority > :priority
        ORDER BY priority DESC, submitted_at
        LIMIT :bound
    ) AS higher
    UNION ALL
    SELECT one FROM (
        SELECT 1 AS one FROM executions
        WHERE status = 'queued' AND priority = :priority AND submitted_at < :submitted_at
        ORDER BY priority DESC, submitted_at
        LIMIT :bound
    ) AS earlier
    UNION ALL
    SELECT one FROM (
        SELECT 1 AS one FROM executions
        WHERE status = 'queued' AND priority = :priority AND submitted_at = :submitted_at
          AND id < :id
        LIMIT :bound
    ) AS tied
    LIMIT :bound
) AS ahead;

-- name: cancel_execution
UPDATE executions
SET status = 'cancelled', finished_at = :now, cancel_reason = :reason,
    lease_expires_at = NULL
WHERE id = :id AND api_key_id = :api_key_id AND status IN ('queued', 'processing')
RETURNING *;

-- name: events_for_execution
SELECT at, event, node_id, message, details FROM execution_events
WHERE execution_id = :execution_id ORDER BY id;

-- name: outputs_for_execution
SELECT * FROM outputs WHERE execution_id = :execution_id ORDER BY created_at, id;
