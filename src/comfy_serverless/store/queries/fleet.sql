-- The fleet side of the store (store/fleet.py): the figures /metrics adds for the alert
-- rules and dashboard in deploy/observability, and the identity a fleet shares.

-- name: oldest_queued_by_priority
SELECT priority, MIN(submitted_at) AS oldest
FROM executions WHERE status = 'queued' GROUP BY priority;

-- name: failures_by_code
SELECT COALESCE(CAST(error AS {{json}}) ->> 'error_code', 'UNKNOWN') AS code, COUNT(*) AS count
FROM executions WHERE status = 'failed' GROUP BY 1;

-- name: lease_rescues
SELECT COUNT(*) AS count FROM execution_events WHERE event = 'execution_rescued';

-- name: record_fleet_identity
INSERT INTO fleet_identity (id, storage, secret_fingerprint, recorded_by, recorded_at)
VALUES (1, :storage, :secret_fingerprint, :recorded_by, :recorded_at)
ON CONFLICT (id) DO NOTHING;

-- name: fleet_identity
SELECT storage, secret_fingerprint, recorded_by, recorded_at FROM fleet_identity WHERE id = 1;

-- name: forget_fleet_identity
DELETE FROM fleet_identity WHERE id = 1;
