-- Output retention: the cleaner's queries.

-- name: outputs_due_for_deletion
SELECT * FROM outputs
WHERE expires_at IS NOT NULL AND expires_at <= :now AND deleted_at IS NULL
  AND (delete_retry_at IS NULL OR delete_retry_at <= :now)
ORDER BY expires_at
LIMIT :limit;

-- name: postpone_output_deletion
UPDATE outputs SET delete_attempts = delete_attempts + 1, delete_retry_at = :retry_at
WHERE id = :id AND deleted_at IS NULL;

-- name: mark_output_deleted
UPDATE outputs SET deleted_at = :now WHERE id = :id AND deleted_at IS NULL;

-- name: delete_expired_executions
-- Execution retention: up to :limit finished executions that finished before :before, oldest
-- first on executions_finished; their log, stream, outputs, webhook and idempotency rows go
-- with them (ON DELETE CASCADE). An execution keeps its rows while one of its outputs still
-- has a stored file (deleted_at IS NULL: output retention has yet to delete it, or keeps it
-- for good), so no file loses the row that output retention deletes it by; and while one
-- of its webhook events still waits to be delivered.
DELETE FROM executions WHERE id IN (
    SELECT e.id FROM executions e
    WHERE e.finished_at IS NOT NULL AND e.finished_at < :before
      AND e.status IN ('completed', 'failed', 'cancelled')
      AND NOT EXISTS (SELECT 1 FROM outputs o
                      WHERE o.execution_id = e.id AND o.deleted_at IS NULL)
      AND NOT EXISTS (SELECT 1 FROM webhook_events w
                      WHERE w.execution_id = e.id AND w.status IN ('pending', 'delivering'))
    ORDER BY e.finished_at
    LIMIT :limit
);
