-- Output retention: the cleaner's queries.

-- name: outputs_due_for_deletion
SELECT * FROM outputs
WHERE expires_at IS NOT NULL AND expires_at <= :now AND deleted_at IS NULL
ORDER BY expires_at
LIMIT :limit;

-- name: mark_output_deleted
UPDATE outputs SET deleted_at = :now WHERE id = :id AND deleted_at IS NULL;
