-- Flat fleet figures (issue #18, targets 4 and 5): the four /metrics figures that still read
-- rows after migration 0016 read maintained tallies, kept as 0016's are.
--
-- failure_tallies: failed executions by error code, counted when a row becomes 'failed';
-- delivery_tallies: webhook delivery attempts by outcome, counted as each is logged;
-- event_tallies now also counts 'execution_rescued' (lease rescues). All three only grow
-- (Prometheus counters: execution retention and a retried failure leave them alone).
-- The oldest queued execution per priority needs no tally: /metrics probes the claim-order
-- index (status, priority DESC, submitted_at) once per priority that the status tallies
-- hold queued work for.
--
-- SQLite's triggers update the tallies directly; the delta tables stay empty here. An
-- error that is not JSON (the service writes none) counts as 'UNKNOWN' rather than failing
-- the status change the trigger runs in.
CREATE TABLE failure_tallies (error_code TEXT PRIMARY KEY, count BIGINT NOT NULL);
CREATE TABLE failure_tally_deltas (id INTEGER PRIMARY KEY, error_code TEXT NOT NULL);
CREATE TABLE delivery_tallies (outcome TEXT PRIMARY KEY, count BIGINT NOT NULL);
CREATE TABLE delivery_tally_deltas (id INTEGER PRIMARY KEY, outcome TEXT NOT NULL);

INSERT INTO failure_tallies (error_code, count)
SELECT COALESCE(CASE WHEN json_valid(error) THEN error ->> 'error_code' END, 'UNKNOWN'), COUNT(*)
FROM executions WHERE status = 'failed' GROUP BY 1;
INSERT INTO delivery_tallies (outcome, count)
SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered' ELSE 'failed' END, COUNT(*)
FROM webhook_deliveries GROUP BY 1;
INSERT INTO event_tallies (event, count)
SELECT 'execution_rescued', COUNT(*) FROM execution_events WHERE event = 'execution_rescued';

CREATE TRIGGER executions_failure_tally AFTER UPDATE OF status ON executions
    WHEN NEW.status = 'failed' AND OLD.status IS NOT 'failed'
BEGIN
    INSERT INTO failure_tallies (error_code, count)
    VALUES (COALESCE(CASE WHEN json_valid(NEW.error) THEN NEW.error ->> 'error_code' END,
                     'UNKNOWN'), 1)
    ON CONFLICT (error_code) DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER executions_failure_tally_insert AFTER INSERT ON executions
    WHEN NEW.status = 'failed'
BEGIN
    INSERT INTO failure_tallies (error_code, count)
    VALUES (COALESCE(CASE WHEN json_valid(NEW.error) THEN NEW.error ->> 'error_code' END,
                     'UNKNOWN'), 1)
    ON CONFLICT (error_code) DO UPDATE SET count = count + 1;
END;

CREATE TRIGGER webhook_deliveries_tally AFTER INSERT ON webhook_deliveries
BEGIN
    INSERT INTO delivery_tallies (outcome, count)
    VALUES (CASE WHEN NEW.status_code BETWEEN 200 AND 299 THEN 'delivered' ELSE 'failed' END, 1)
    ON CONFLICT (outcome) DO UPDATE SET count = count + 1;
END;

DROP TRIGGER execution_events_tally;
CREATE TRIGGER execution_events_tally AFTER INSERT ON execution_events
    WHEN NEW.event IN ('model_loaded', 'execution_rescued')
BEGIN
    UPDATE event_tallies SET count = count + 1 WHERE event = NEW.event;
END;
