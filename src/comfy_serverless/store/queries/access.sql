-- Access: key administration, admission of new executions (limits, monthly usage) and
-- idempotency keys. Used by store/access.py.

-- name: insert_api_key
INSERT INTO api_keys (id, prefix, secret_hash, kind, tier, is_admin, name, created_at,
                      custom_limits)
VALUES (:id, :prefix, :secret_hash, :kind, :tier, :is_admin, :name, :created_at,
        :custom_limits);

-- name: api_key_by_prefix
SELECT * FROM api_keys WHERE prefix = :prefix;

-- name: touch_api_key
UPDATE api_keys SET last_used_at = :now WHERE id = :id;

-- name: api_keys_all
SELECT * FROM api_keys ORDER BY created_at, id;

-- name: api_key_by_id
SELECT * FROM api_keys WHERE id = :id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL;

-- name: rotate_api_key
UPDATE api_keys SET prefix = :prefix, secret_hash = :secret_hash, rotated_at = :now
WHERE id = :id AND revoked_at IS NULL;

-- name: set_custom_limits
UPDATE api_keys SET custom_limits = :custom_limits WHERE id = :id;

-- name: lock_api_key
SELECT id FROM api_keys WHERE id = :id {{for_update}};

-- name: forget_idempotency_key
DELETE FROM idempotency_keys
WHERE api_key_id = :api_key_id AND request_key = :request_key AND created_at < :cutoff;

-- name: forget_idempotency_keys
DELETE FROM idempotency_keys WHERE created_at < :cutoff;

-- name: idempotency_key
SELECT execution_id, fingerprint, created_at FROM idempotency_keys
WHERE api_key_id = :api_key_id AND request_key = :request_key;

-- name: insert_idempotency_key
INSERT INTO idempotency_keys (api_key_id, request_key, fingerprint, execution_id, created_at)
VALUES (:api_key_id, :request_key, :fingerprint, :execution_id, :now);

-- name: unfinished_for_key
-- The key's running executions first (they end soonest), then the oldest queued ones.
SELECT * FROM executions
WHERE api_key_id = :api_key_id AND status IN ('queued', 'processing')
ORDER BY CASE status WHEN 'processing' THEN 0 ELSE 1 END, submitted_at
LIMIT :limit;

-- name: count_queued_for_tier
-- Counted up to :cap (the limit it is compared with): never more rows than the limit.
SELECT COUNT(*) AS n FROM (
    SELECT 1 FROM executions e JOIN api_keys k ON k.id = e.api_key_id
    WHERE e.status = 'queued' AND k.tier = :tier
    LIMIT :cap
) AS queued;

-- name: admission_counts
-- What an admission compares with the key's limits, in one round trip, read once the key's
-- row is locked: its unfinished executions, counted up to :concurrent_cap (in
-- executions_by_key's order, so the planner reads that index: a sequential scan that hopes
-- to meet the cap early would read a long history first); its tier's queued executions, up
-- to :queue_cap; and its executions this month.
SELECT
    (SELECT COUNT(*) FROM (
        SELECT 1 FROM executions
        WHERE api_key_id = :api_key_id AND status IN ('queued', 'processing')
        ORDER BY api_key_id, status
        LIMIT :concurrent_cap) AS unfinished) AS unfinished,
    (SELECT COUNT(*) FROM (
        SELECT 1 FROM executions e JOIN api_keys k ON k.id = e.api_key_id
        WHERE e.status = 'queued' AND k.tier = :tier
        LIMIT :queue_cap) AS queued) AS queued,
    COALESCE((SELECT executions FROM key_usage
              WHERE api_key_id = :api_key_id AND period = :period), 0) AS used;

-- name: ensure_key_usage
INSERT INTO key_usage (api_key_id, period, executions) VALUES (:api_key_id, :period, 0)
ON CONFLICT (api_key_id, period) DO NOTHING;

-- name: key_usage
SELECT executions FROM key_usage WHERE api_key_id = :api_key_id AND period = :period;

-- name: count_key_usage
-- One more execution this month (the month's row made by its first).
INSERT INTO key_usage (api_key_id, period, executions) VALUES (:api_key_id, :period, 1)
ON CONFLICT (api_key_id, period) DO UPDATE SET executions = key_usage.executions + 1;

-- name: set_key_usage
UPDATE key_usage SET executions = :executions WHERE api_key_id = :api_key_id AND period = :period;

-- name: lock_tier_queue
-- SQLite's writers already take turns (BEGIN IMMEDIATE); PostgreSQL overrides this.
SELECT CAST(:tier AS TEXT) AS tier;
