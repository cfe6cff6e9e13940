-- The event stream (GET /v1/workflows/{id}/events): one append-only row per event of an
-- execution, numbered 1, 2, 3 … per execution, written by triggers in the transaction of
-- the change they describe. SQLite runs one write transaction at a time, so the rows of
-- an execution commit in number order. Readers poll (there is no NOTIFY).
CREATE TABLE execution_stream (
    execution_id  TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    at            DOUBLE PRECISION NOT NULL,
    kind          TEXT NOT NULL,
    data          TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TRIGGER execution_stream_queued AFTER INSERT ON executions
BEGIN
    INSERT INTO execution_stream (execution_id, seq, at, kind, data)
    SELECT NEW.id, COALESCE(MAX(seq), 0) + 1, julianday('now') * 86400.0 - 210866760000.0,
           'status', json_object('status', NEW.status)
    FROM execution_stream WHERE execution_id = NEW.id;
END;

CREATE TRIGGER execution_stream_status AFTER UPDATE OF status ON executions
WHEN NEW.status <> OLD.status
BEGIN
    INSERT INTO execution_stream (execution_id, seq, at, kind, data)
    SELECT NEW.id, COALESCE(MAX(seq), 0) + 1, julianday('now') * 86400.0 - 210866760000.0,
           'status', json_object('status', NEW.status)
    FROM execution_stream WHERE execution_id = NEW.id;
    INSERT INTO execution_stream (execution_id, seq, at, kind, data)
    SELECT NEW.id, (SELECT MAX(seq) + 1 FROM execution_stream WHERE execution_id = NEW.id),
           julianday('now') * 86400.0 - 210866760000.0, 'end', json_object('status', NEW.status)
    WHERE NEW.status IN ('completed', 'failed', 'cancelled');
END;

CREATE TRIGGER execution_stream_progress
AFTER UPDATE OF progress, current_node_id, current_step, completed_nodes ON executions
WHEN NEW.status = 'processing' AND OLD.status = 'processing' AND (
    NEW.progress IS NOT OLD.progress OR NEW.current_node_id IS NOT OLD.current_node_id
    OR NEW.current_step IS NOT OLD.current_step OR NEW.completed_nodes IS NOT OLD.completed_nodes)
BEGIN
    INSERT INTO execution_stream (execution_id, seq, at, kind, data)
    SELECT NEW.id, COALESCE(MAX(seq), 0) + 1, julianday('now') * 86400.0 - 210866760000.0,
           'progress', json_object(
               'progress', NEW.progress, 'current_node', NEW.current_node,
               'current_node_id', NEW.current_node_id, 'current_step', NEW.current_step,
               'total_steps', NEW.total_steps, 'completed_nodes', NEW.completed_nodes,
               'total_nodes', NEW.total_nodes)
    FROM execution_stream WHERE execution_id = NEW.id;
END;

CREATE TRIGGER execution_stream_log AFTER INSERT ON execution_events
BEGIN
    INSERT INTO execution_stream (execution_id, seq, at, kind, data)
    SELECT NEW.execution_id, COALESCE(MAX(seq), 0) + 1,
           julianday('now') * 86400.0 - 210866760000.0, 'log', json_object(
               'at', NEW.at, 'event', NEW.event, 'node_id', NEW.node_id,
               'message', NEW.message, 'details', json(NEW.details))
    FROM execution_stream WHERE execution_id = NEW.execution_id;
END;

CREATE TRIGGER execution_stream_output AFTER INSERT ON outputs
BEGIN
    INSERT INTO execution_stream (execution_id, seq, at, kind, data)
    SELECT NEW.execution_id, COALESCE(MAX(seq), 0) + 1,
           julianday('now') * 86400.0 - 210866760000.0,
           CASE WHEN NEW.intermediate = 1 THEN 'preview' ELSE 'output' END,
           json_object('output_id', NEW.id)
    FROM execution_stream WHERE execution_id = NEW.execution_id;
END;
