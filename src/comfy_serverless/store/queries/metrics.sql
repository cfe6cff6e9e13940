-- Metrics: the figures of /metrics, the queue status and the estimates.
-- Used by store/metrics.py.

-- name: live_worker_count
SELECT COUNT(*) AS live FROM workers WHERE heartbeat_at >= :since AND state <> 'stopped';

-- name: average_processing_time
-- The last 50 completions, read backwards on executions_finished.
SELECT AVG(finished_at - started_at) AS seconds, COUNT(*) AS samples FROM (
    SELECT finished_at, started_at FROM executions
    WHERE status = 'completed' AND finished_at IS NOT NULL
    ORDER BY finished_at DESC
    LIMIT 50
) AS recent;

-- name: average_processing_time_for_signature
-- The last 50 completions of one workflow, on executions_completed_by_signature.
SELECT AVG(finished_at - started_at) AS seconds, COUNT(*) AS samples FROM (
    SELECT finished_at, started_at FROM executions
    WHERE status = 'completed' AND signature = :signature
    ORDER BY signature, finished_at DESC
    LIMIT 50
) AS recent;

-- name: status_tallies
-- Executions per (status, priority) and the sum of their submit times (ms): the folded
-- tallies plus the deltas not folded yet (PostgreSQL's triggers append them; SQLite's
-- update the tallies directly). Reads a few rows however many executions there are.
SELECT status, priority, SUM(count) AS count, SUM(submitted_ms_sum) AS submitted_ms_sum
FROM (
    SELECT status, priority, count, submitted_ms_sum FROM execution_tallies
    UNION ALL
    SELECT status, priority, change, change * submitted_ms FROM execution_tally_deltas
) AS tallies
GROUP BY status, priority
HAVING SUM(count) <> 0;

-- name: recent_wait_time
-- The latest :sample executions started since :since, read backwards on executions_started:
-- bounded however busy the window was.
SELECT AVG(started_at - submitted_at) AS seconds FROM (
    SELECT started_at, submitted_at FROM executions
    WHERE started_at IS NOT NULL AND started_at >= :since
    ORDER BY started_at DESC
    LIMIT :sample
) AS recent;

-- name: recent_processing_time
-- The latest :sample completions since :since, read backwards on executions_finished.
SELECT AVG(finished_at - started_at) AS seconds FROM (
    SELECT finished_at, started_at FROM executions
    WHERE finished_at IS NOT NULL AND finished_at >= :since AND status = 'completed'
    ORDER BY finished_at DESC
    LIMIT :sample
) AS recent;

-- name: duration_tallies
-- The completed executions' cumulative histograms at the bounds of duration_bounds: the
-- folded tallies plus the pending completions' deltas.
SELECT t.le AS le,
       t.waits + COALESCE(SUM(CASE WHEN d.wait <= t.le THEN 1 ELSE 0 END), 0) AS waits,
       t.works + COALESCE(SUM(CASE WHEN d.work <= t.le THEN 1 ELSE 0 END), 0) AS works
FROM duration_tallies t LEFT JOIN execution_tally_deltas d ON d.wait IS NOT NULL
GROUP BY t.le, t.waits, t.works
ORDER BY t.le;

-- name: completion_totals
-- The histograms' count and sums, folded and pending.
SELECT c.count + (SELECT COUNT(*) FROM execution_tally_deltas WHERE wait IS NOT NULL) AS count,
       c.wait_sum + COALESCE((SELECT SUM(wait) FROM execution_tally_deltas
                              WHERE wait IS NOT NULL), 0) AS wait_sum,
       c.work_sum + COALESCE((SELECT SUM(work) FROM execution_tally_deltas
                              WHERE wait IS NOT NULL), 0) AS work_sum
FROM completion_tallies c WHERE c.id = 1;

-- name: lock_tally_fold
-- SQLite has no deltas to fold (its triggers update the tallies); PostgreSQL overrides.
SELECT 0 AS locked;

-- name: fold_tally_deltas
SELECT CAST(:batch AS INTEGER) * 0 AS folded;

-- name: webhook_deliveries_by_outcome
-- Delivery attempts by outcome: tallied as each is logged (migration 0018), folded and
-- pending, so execution retention does not take them back.
SELECT outcome, SUM(count) AS count FROM (
    SELECT outcome, count FROM delivery_tallies
    UNION ALL
    SELECT outcome, 1 FROM delivery_tally_deltas
) AS tallies
GROUP BY outcome
HAVING SUM(count) <> 0;

-- name: model_loads
-- Model loads seen in the logs: tallied (migration 0016), folded and pending. Counted as
-- they are logged, so execution retention does not take them back.
SELECT COALESCE((SELECT count FROM event_tallies WHERE event = 'model_loaded'), 0)
       + (SELECT COUNT(*) FROM event_tally_deltas WHERE event = 'model_loaded') AS count;
