-- Flat fleet figures (issue #18, targets 4 and 5): the four /metrics figures that still read
-- rows after migration 0016 read maintained tallies, kept as 0016's are.
--
-- failure_tallies: failed executions by error code, counted when a row becomes 'failed';
-- delivery_tallies: webhook delivery attempts by outcome, counted as each is logged;
-- event_tallies now also counts 'execution_rescued' (lease rescues). All three only grow
-- (Prometheus counters: execution retention and a retried failure leave them alone).
-- The oldest queued execution per priority needs no tally: /metrics probes the claim-order
-- index (priority DESC, submitted_at) WHERE status = 'queued' once per priority that the
-- status tallies hold queued work for.
--
-- As in 0016, PostgreSQL's triggers append deltas (no hot row) that the tally folder folds,
-- and no transition may commit between the backfill's snapshot and the triggers' creation.
LOCK TABLE executions, execution_events, webhook_deliveries IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE failure_tallies (error_code TEXT PRIMARY KEY, count BIGINT NOT NULL);
CREATE TABLE failure_tally_deltas (id BIGSERIAL PRIMARY KEY, error_code TEXT NOT NULL);
CREATE TABLE delivery_tallies (outcome TEXT PRIMARY KEY, count BIGINT NOT NULL);
CREATE TABLE delivery_tally_deltas (id BIGSERIAL PRIMARY KEY, outcome TEXT NOT NULL);

-- A failure's error code as /metrics has always read it ('UNKNOWN' without one); an error
-- that is not JSON (the service writes none) counts as 'UNKNOWN' rather than failing the
-- status change that the trigger below runs in.
CREATE FUNCTION failure_code(error TEXT) RETURNS TEXT LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN COALESCE(CAST(error AS jsonb) ->> 'error_code', 'UNKNOWN');
EXCEPTION WHEN invalid_text_representation THEN
    RETURN 'UNKNOWN';
END
$$;

INSERT INTO failure_tallies (error_code, count)
SELECT failure_code(error), COUNT(*) FROM executions WHERE status = 'failed' GROUP BY 1;
INSERT INTO delivery_tallies (outcome, count)
SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered' ELSE 'failed' END, COUNT(*)
FROM webhook_deliveries GROUP BY 1;
INSERT INTO event_tallies (event, count)
SELECT 'execution_rescued', COUNT(*) FROM execution_events WHERE event = 'execution_rescued';

CREATE FUNCTION executions_failure_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO failure_tally_deltas (error_code)
    VALUES (failure_code(NEW.error));
    RETURN NULL;
END
$$;
CREATE TRIGGER executions_failure_tally AFTER UPDATE OF status ON executions FOR EACH ROW
    WHEN (NEW.status = 'failed' AND OLD.status IS DISTINCT FROM 'failed')
    EXECUTE FUNCTION executions_failure_tally();
CREATE TRIGGER executions_failure_tally_insert AFTER INSERT ON executions FOR EACH ROW
    WHEN (NEW.status = 'failed') EXECUTE FUNCTION executions_failure_tally();

CREATE FUNCTION webhook_deliveries_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_tally_deltas (outcome)
    VALUES (CASE WHEN NEW.status_code BETWEEN 200 AND 299 THEN 'delivered' ELSE 'failed' END);
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_deliveries_tally AFTER INSERT ON webhook_deliveries FOR EACH ROW
    EXECUTE FUNCTION webhook_deliveries_tally();

DROP TRIGGER execution_events_tally ON execution_events;
CREATE TRIGGER execution_events_tally AFTER INSERT ON execution_events
    FOR EACH ROW WHEN (NEW.event IN ('model_loaded', 'execution_rescued'))
    EXECUTE FUNCTION execution_events_tally();
