-- PostgreSQL overrides of the shared queries.

-- name: lock_tier_queue
-- Admissions near a tier's max_queue_size take turns (released at commit).
SELECT pg_advisory_xact_lock(hashtext('comfy_serverless.tier_queue:' || CAST(:tier AS TEXT)));

-- name: refresh_planner_statistics
-- The queue's share of the table changes faster than autovacuum's thresholds notice on a
-- large table; stale statistics make the claim sort the whole queue instead of reading its
-- head from the index (2.4 ms against 1.1 ms per claim with 2,000 queued). Takes no lock
-- that conflicts with reads or writes.
ANALYZE executions;

-- name: lock_tally_fold
-- One folder at a time (released at commit); the others leave the deltas to it.
SELECT pg_try_advisory_xact_lock(hashtext('comfy_serverless.tally_fold')) AS locked;

-- name: fold_tally_deltas
-- Move up to :batch pending deltas of each kind into the tallies in one statement: the
-- DELETE ... RETURNING hands each delta to exactly one fold, and a reader sees it either
-- pending or folded.
WITH moved AS (
    DELETE FROM execution_tally_deltas WHERE id IN (
        SELECT id FROM execution_tally_deltas ORDER BY id LIMIT :batch)
    RETURNING status, priority, change, submitted_ms, wait, work
), statuses AS (
    INSERT INTO execution_tallies AS t (status, priority, count, submitted_ms_sum)
    SELECT status, priority, SUM(change), SUM(change * submitted_ms) FROM moved
    GROUP BY status, priority ORDER BY status, priority
    ON CONFLICT (status, priority) DO UPDATE
    SET count = t.count + EXCLUDED.count,
        submitted_ms_sum = t.submitted_ms_sum + EXCLUDED.submitted_ms_sum
    RETURNING 1
), durations AS (
    UPDATE duration_tallies AS t SET waits = t.waits + d.waits, works = t.works + d.works
    FROM (SELECT b.le, COUNT(*) FILTER (WHERE m.wait <= b.le) AS waits,
                 COUNT(*) FILTER (WHERE m.work <= b.le) AS works
          FROM duration_bounds b JOIN moved m ON m.wait IS NOT NULL
          GROUP BY b.le) AS d
    WHERE t.le = d.le
    RETURNING 1
), moved_events AS (
    DELETE FROM event_tally_deltas WHERE id IN (
        SELECT id FROM event_tally_deltas ORDER BY id LIMIT :batch)
    RETURNING event
), events AS (
    INSERT INTO event_tallies AS t (event, count)
    SELECT event, COUNT(*) FROM moved_events GROUP BY event ORDER BY event
    ON CONFLICT (event) DO UPDATE SET count = t.count + EXCLUDED.count
    RETURNING 1
), moved_failures AS (
    DELETE FROM failure_tally_deltas WHERE id IN (
        SELECT id FROM failure_tally_deltas ORDER BY id LIMIT :batch)
    RETURNING error_code
), failures AS (
    INSERT INTO failure_tallies AS t (error_code, count)
    SELECT error_code, COUNT(*) FROM moved_failures GROUP BY error_code ORDER BY error_code
    ON CONFLICT (error_code) DO UPDATE SET count = t.count + EXCLUDED.count
    RETURNING 1
), moved_deliveries AS (
    DELETE FROM delivery_tally_deltas WHERE id IN (
        SELECT id FROM delivery_tally_deltas ORDER BY id LIMIT :batch)
    RETURNING outcome
), deliveries AS (
    INSERT INTO delivery_tallies AS t (outcome, count)
    SELECT outcome, COUNT(*) FROM moved_deliveries GROUP BY outcome ORDER BY outcome
    ON CONFLICT (outcome) DO UPDATE SET count = t.count + EXCLUDED.count
    RETURNING 1
), completions AS (
    UPDATE completion_tallies AS t
    SET count = t.count + c.count, wait_sum = t.wait_sum + c.wait_sum,
        work_sum = t.work_sum + c.work_sum
    FROM (SELECT COUNT(*) AS count, COALESCE(SUM(wait), 0) AS wait_sum,
                 COALESCE(SUM(work), 0) AS work_sum
          FROM moved WHERE wait IS NOT NULL) AS c
    WHERE t.id = 1
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM moved) + (SELECT COUNT(*) FROM moved_events)
       + (SELECT COUNT(*) FROM moved_failures) + (SELECT COUNT(*) FROM moved_deliveries)
       AS folded;
