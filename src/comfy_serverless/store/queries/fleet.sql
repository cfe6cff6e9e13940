-- The fleet side of the store (store/fleet.py): the figures /metrics adds for the alert
-- rules and dashboard in deploy/observability, and the identity a fleet shares.

-- name: oldest_queued_by_priority
-- One probe of the claim-order index (MIN is its first entry) per priority that the status
-- tallies (folded and pending) hold queued work for: a loop bounded by the distinct
-- priorities, not the queue. A NULL (no row seen, from a tally not yet right) is skipped.
SELECT q.priority AS priority,
       (SELECT MIN(e.submitted_at) FROM executions e
        WHERE e.status = 'queued' AND e.priority = q.priority) AS oldest
FROM (
    SELECT priority FROM (
        SELECT priority, count FROM execution_tallies WHERE status = 'queued'
        UNION ALL
        SELECT priority, change FROM execution_tally_deltas WHERE status = 'queued'
    ) AS tallies
    GROUP BY priority
    HAVING SUM(count) > 0
) AS q;

-- name: failures_by_code
-- Failed executions by error code, tallied as each became 'failed' (migration 0018), folded
-- and pending: a counter, which execution retention and a retry do not take back.
SELECT error_code AS code, SUM(count) AS count FROM (
    SELECT error_code, count FROM failure_tallies
    UNION ALL
    SELECT error_code, 1 FROM failure_tally_deltas
) AS tallies
GROUP BY error_code
HAVING SUM(count) <> 0;

-- name: lease_rescues
-- Leases taken back (execution_rescued log entries): tallied as logged (migration 0018),
-- folded and pending.
SELECT COALESCE((SELECT count FROM event_tallies WHERE event = 'execution_rescued'), 0)
       + (SELECT COUNT(*) FROM event_tally_deltas WHERE event = 'execution_rescued') AS count;

-- name: record_fleet_identity
INSERT INTO fleet_identity (id, storage, secret_fingerprint, recorded_by, recorded_at)
VALUES (1, :storage, :secret_fingerprint, :recorded_by, :recorded_at)
ON CONFLICT (id) DO NOTHING;

-- name: fleet_identity
SELECT storage, secret_fingerprint, recorded_by, recorded_at FROM fleet_identity WHERE id = 1;

-- name: forget_fleet_identity
DELETE FROM fleet_identity WHERE id = 1;
