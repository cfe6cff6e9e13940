-- Flat aggregates (issue #18, targets 4 and 5): the queue status and /metrics read a few
-- maintained tallies instead of counting executions, and every request path's query has an
-- index that bounds what it reads however long the queue or the history grows.
--
-- execution_tallies: how many executions each (status, priority) holds, and, for queued
-- ones only, the sum of their submit times in integer milliseconds (exact: a mean wait is
-- now - sum / count). Only the queued sum is read, and only it stays bounded: summed over
-- every finished execution, it would pass 2^63 after some five million.
-- duration_tallies: the completed executions' cumulative histograms (wait: submit to start,
-- work: start to end) at the bounds of duration_bounds; completion_tallies: their count
-- and sums; event_tallies: the log entries /metrics counts (model loads). These three only
-- grow: a histogram is a Prometheus counter, so deleting old rows (execution retention)
-- leaves them alone.
--
-- PostgreSQL's triggers append deltas (execution_tally_deltas, event_tally_deltas) instead of updating a tally
-- row: every submit would otherwise wait on the same hot row until the previous commit.
-- Housekeeping folds the deltas into the tallies; a reader adds the few pending ones.
-- No transition may commit between the backfill's snapshot and the triggers' creation (it
-- would never be counted): workers and API replicas still running wait for this migration.
LOCK TABLE executions, execution_events IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE execution_tallies (
    status            TEXT NOT NULL,
    priority          INTEGER NOT NULL,
    count             BIGINT NOT NULL,
    submitted_ms_sum  BIGINT NOT NULL,
    PRIMARY KEY (status, priority)
);
CREATE TABLE duration_bounds (le DOUBLE PRECISION PRIMARY KEY);
INSERT INTO duration_bounds (le) VALUES
    (0.1), (0.5), (1.0), (2.5), (5.0), (10.0), (30.0), (60.0), (120.0), (300.0), (600.0),
    (1800.0), (3600.0);
CREATE TABLE duration_tallies (
    le     DOUBLE PRECISION PRIMARY KEY REFERENCES duration_bounds (le),
    waits  BIGINT NOT NULL,
    works  BIGINT NOT NULL
);
CREATE TABLE completion_tallies (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    count     BIGINT NOT NULL,
    wait_sum  DOUBLE PRECISION NOT NULL,
    work_sum  DOUBLE PRECISION NOT NULL
);
CREATE TABLE execution_tally_deltas (
    id            BIGSERIAL PRIMARY KEY,
    status        TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    change        INTEGER NOT NULL,
    submitted_ms  BIGINT NOT NULL,
    wait          DOUBLE PRECISION,
    work          DOUBLE PRECISION
);

-- Log entries counted by /metrics (model loads), tallied as the executions are.
CREATE TABLE event_tallies (event TEXT PRIMARY KEY, count BIGINT NOT NULL);
CREATE TABLE event_tally_deltas (id BIGSERIAL PRIMARY KEY, event TEXT NOT NULL);
INSERT INTO event_tallies (event, count)
SELECT 'model_loaded', COUNT(*) FROM execution_events WHERE event = 'model_loaded';

INSERT INTO execution_tallies (status, priority, count, submitted_ms_sum)
SELECT status, priority, COUNT(*),
       SUM(CASE WHEN status = 'queued' THEN CAST(ROUND(submitted_at * 1000) AS BIGINT)
                ELSE 0 END)
FROM executions GROUP BY status, priority;
INSERT INTO duration_tallies (le, waits, works)
SELECT b.le,
       COUNT(*) FILTER (WHERE e.started_at - e.submitted_at <= b.le),
       COUNT(*) FILTER (WHERE e.finished_at - e.started_at <= b.le)
FROM duration_bounds b LEFT JOIN executions e ON e.status = 'completed'
GROUP BY b.le;
INSERT INTO completion_tallies (id, count, wait_sum, work_sum)
SELECT 1, COUNT(*), COALESCE(SUM(started_at - submitted_at), 0),
       COALESCE(SUM(finished_at - started_at), 0)
FROM executions WHERE status = 'completed';

CREATE FUNCTION executions_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO execution_tally_deltas (status, priority, change, submitted_ms)
        VALUES (OLD.status, OLD.priority, -1, CASE WHEN OLD.status = 'queued' THEN CAST(ROUND(OLD.submitted_at * 1000) AS BIGINT) ELSE 0 END);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO execution_tally_deltas (status, priority, change, submitted_ms, wait, work)
        VALUES (NEW.status, NEW.priority, 1, CASE WHEN NEW.status = 'queued' THEN CAST(ROUND(NEW.submitted_at * 1000) AS BIGINT) ELSE 0 END,
                CASE WHEN NEW.status = 'completed' AND OLD.status IS DISTINCT FROM 'completed'
                     THEN COALESCE(NEW.started_at - NEW.submitted_at, 0) END,
                CASE WHEN NEW.status = 'completed' AND OLD.status IS DISTINCT FROM 'completed'
                     THEN COALESCE(NEW.finished_at - NEW.started_at, 0) END);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER executions_tally_insert AFTER INSERT OR DELETE ON executions
    FOR EACH ROW EXECUTE FUNCTION executions_tally();
CREATE TRIGGER executions_tally_update AFTER UPDATE OF status, priority, submitted_at
    ON executions FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status OR NEW.priority IS DISTINCT FROM OLD.priority
          OR NEW.submitted_at IS DISTINCT FROM OLD.submitted_at)
    EXECUTE FUNCTION executions_tally();

CREATE FUNCTION execution_events_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_tally_deltas (event) VALUES (NEW.event);
    RETURN NULL;
END
$$;
CREATE TRIGGER execution_events_tally AFTER INSERT ON execution_events
    FOR EACH ROW WHEN (NEW.event = 'model_loaded') EXECUTE FUNCTION execution_events_tally();

-- The recent averages (queue status, estimates) and execution retention read a time range.
CREATE INDEX executions_finished ON executions (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX executions_started ON executions (started_at) WHERE started_at IS NOT NULL;
CREATE INDEX executions_completed_by_signature ON executions (signature, finished_at)
    WHERE status = 'completed';
-- The rescuer's expired leases: only the running executions.
CREATE INDEX executions_leases ON executions (lease_expires_at) WHERE status = 'processing';
-- Deleting an execution (retention) cascades to its idempotency key.
CREATE INDEX idempotency_keys_by_execution ON idempotency_keys (execution_id);
