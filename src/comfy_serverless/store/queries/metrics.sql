-- Metrics: the figures of /metrics, the queue status and the estimates.
-- Used by store/metrics.py.

-- name: live_worker_count
SELECT COUNT(*) AS live FROM workers WHERE heartbeat_at >= :since AND state <> 'stopped';

-- name: average_processing_time
SELECT AVG(finished_at - started_at) AS seconds, COUNT(*) AS samples FROM (
    SELECT finished_at, started_at FROM executions
    WHERE status = 'completed' AND (CAST(:signature AS TEXT) IS NULL OR signature = :signature)
    ORDER BY finished_at DESC
    LIMIT 50
) AS recent;

-- name: queue_totals
SELECT status, COUNT(*) AS count FROM executions
WHERE status IN ('queued', 'processing') GROUP BY status;

-- name: queue_breakdown
SELECT priority, COUNT(*) AS count, AVG(:now - submitted_at) AS avg_wait
FROM executions WHERE status = 'queued' GROUP BY priority ORDER BY priority DESC;

-- name: recent_wait_time
SELECT AVG(started_at - submitted_at) AS seconds FROM executions
WHERE started_at IS NOT NULL AND started_at >= :since;

-- name: recent_processing_time
SELECT AVG(finished_at - started_at) AS seconds FROM executions
WHERE status = 'completed' AND finished_at >= :since;

-- name: executions_by_status
SELECT status, COUNT(*) AS count FROM executions GROUP BY status;

-- name: queue_depth_by_priority
SELECT priority, COUNT(*) AS count FROM executions WHERE status = 'queued' GROUP BY priority;

-- name: completed_duration_buckets
-- One row per histogram bound (:bounds, a JSON array in ascending order): how many completed
-- executions waited (submit to start) and ran (start to end) at most that long.
WITH bounds AS (
    SELECT CAST(b.value AS DOUBLE PRECISION) AS le
    FROM {{json_items}}(CAST(:bounds AS {{json}})) AS b
)
SELECT bounds.le AS le,
       COALESCE(SUM(CASE WHEN e.started_at - e.submitted_at <= bounds.le THEN 1 ELSE 0 END),
                0) AS waits,
       COALESCE(SUM(CASE WHEN e.finished_at - e.started_at <= bounds.le THEN 1 ELSE 0 END),
                0) AS works
FROM bounds LEFT JOIN executions e ON e.status = 'completed'
GROUP BY bounds.le
ORDER BY bounds.le;

-- name: completed_duration_totals
-- The histograms' count and sums.
SELECT COUNT(*) AS count, SUM(started_at - submitted_at) AS wait_sum,
       SUM(finished_at - started_at) AS work_sum
FROM executions WHERE status = 'completed';

-- name: webhook_deliveries_by_outcome
SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered' ELSE 'failed' END AS outcome,
       COUNT(*) AS count
FROM webhook_deliveries GROUP BY 1;

-- name: model_loads
SELECT COUNT(*) AS count FROM execution_events WHERE event = 'model_loaded';
