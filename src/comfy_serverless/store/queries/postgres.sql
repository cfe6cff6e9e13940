-- PostgreSQL overrides: workers on many machines claim with SKIP LOCKED.

-- name: claim_next
UPDATE executions
SET status = 'processing', worker_id = :worker_id, lease_owner = :worker_id,
    lease_expires_at = :lease_expires_at, attempt = attempt + 1, started_at = :now,
    progress = 0, current_node = NULL, current_node_id = NULL, current_step = NULL,
    total_steps = NULL, completed_nodes = 0, engine_prompt_id = NULL
WHERE id = (
    SELECT id FROM executions
    WHERE status = 'queued' AND (not_before IS NULL OR not_before <= :now)
    ORDER BY priority DESC, submitted_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: average_processing_time
SELECT AVG(finished_at - started_at) AS seconds, COUNT(*) AS samples FROM (
    SELECT finished_at, started_at FROM executions
    WHERE status = 'completed' AND (CAST(:signature AS TEXT) IS NULL OR signature = :signature)
    ORDER BY finished_at DESC
    LIMIT 50
) AS recent;
