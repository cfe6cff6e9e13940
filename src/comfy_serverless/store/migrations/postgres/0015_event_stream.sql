-- The event stream (GET /v1/workflows/{id}/events): one append-only row per event of an
-- execution, numbered 1, 2, 3 … per execution. Triggers write them in the transaction of
-- the change they describe (status, progress, log entry, stored output), so they commit
-- with it. The number is taken under the execution's row lock (FOR NO KEY UPDATE, the
-- lock an UPDATE of the row takes: a FOREIGN KEY check's KEY SHARE does not block it,
-- so an insert into a child table never upgrades into a deadlock), so the rows of one
-- execution commit in number order and a reader that asks for `seq > n` never skips one.
-- Every insert sends NOTIFY comfy_serverless_stream (payload: the execution id) to wake
-- the streams of any API replica.
CREATE TABLE execution_stream (
    execution_id  TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    at            DOUBLE PRECISION NOT NULL,
    kind          TEXT NOT NULL,
    data          TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE FUNCTION execution_stream_append(execution TEXT, event_kind TEXT, payload TEXT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM executions WHERE id = execution FOR NO KEY UPDATE;
    INSERT INTO execution_stream (execution_id, seq, at, kind, data)
    SELECT execution, COALESCE(MAX(seq), 0) + 1, EXTRACT(EPOCH FROM clock_timestamp()),
           event_kind, payload
    FROM execution_stream WHERE execution_id = execution;
    PERFORM pg_notify('comfy_serverless_stream', execution);
END
$$;

CREATE FUNCTION execution_stream_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM execution_stream_append(NEW.id, 'status', json_build_object('status', NEW.status)::text);
    IF NEW.status IN ('completed', 'failed', 'cancelled') THEN
        PERFORM execution_stream_append(NEW.id, 'end', json_build_object('status', NEW.status)::text);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER execution_stream_queued AFTER INSERT ON executions
    FOR EACH ROW EXECUTE FUNCTION execution_stream_status();
CREATE TRIGGER execution_stream_status AFTER UPDATE OF status ON executions
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION execution_stream_status();

CREATE FUNCTION execution_stream_progress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM execution_stream_append(NEW.id, 'progress', json_build_object(
        'progress', NEW.progress, 'current_node', NEW.current_node,
        'current_node_id', NEW.current_node_id, 'current_step', NEW.current_step,
        'total_steps', NEW.total_steps, 'completed_nodes', NEW.completed_nodes,
        'total_nodes', NEW.total_nodes)::text);
    RETURN NEW;
END
$$;
CREATE TRIGGER execution_stream_progress
    AFTER UPDATE OF progress, current_node_id, current_step, completed_nodes ON executions
    FOR EACH ROW WHEN (NEW.status = 'processing' AND OLD.status = 'processing' AND (
        NEW.progress IS DISTINCT FROM OLD.progress
        OR NEW.current_node_id IS DISTINCT FROM OLD.current_node_id
        OR NEW.current_step IS DISTINCT FROM OLD.current_step
        OR NEW.completed_nodes IS DISTINCT FROM OLD.completed_nodes))
    EXECUTE FUNCTION execution_stream_progress();

CREATE FUNCTION execution_stream_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM execution_stream_append(NEW.execution_id, 'log', json_build_object(
        'at', NEW.at, 'event', NEW.event, 'node_id', NEW.node_id, 'message', NEW.message,
        'details', NEW.details::json)::text);
    RETURN NEW;
END
$$;
CREATE TRIGGER execution_stream_log AFTER INSERT ON execution_events
    FOR EACH ROW EXECUTE FUNCTION execution_stream_log();

CREATE FUNCTION execution_stream_output() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM execution_stream_append(NEW.execution_id,
        CASE WHEN NEW.intermediate = 1 THEN 'preview' ELSE 'output' END,
        json_build_object('output_id', NEW.id)::text);
    RETURN NEW;
END
$$;
CREATE TRIGGER execution_stream_output AFTER INSERT ON outputs
    FOR EACH ROW EXECUTE FUNCTION execution_stream_output();
