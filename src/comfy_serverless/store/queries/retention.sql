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
