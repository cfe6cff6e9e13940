-- Fleet figures for /metrics beyond metric_counts: what the alert rules and the dashboard in
-- deploy/observability need (store/fleet_metrics.py).

-- name: oldest_queued_by_priority
SELECT priority, MIN(submitted_at) AS oldest
FROM executions WHERE status = 'queued' GROUP BY priority;

-- name: failures_by_code
SELECT COALESCE(CAST(error AS {{json}}) ->> 'error_code', 'UNKNOWN') AS code, COUNT(*) AS count
FROM executions WHERE status = 'failed' GROUP BY 1;

-- name: lease_rescues
SELECT COUNT(*) AS count FROM execution_events WHERE event = 'execution_rescued';
