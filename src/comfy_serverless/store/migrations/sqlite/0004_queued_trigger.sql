-- A new execution logs its own `execution_queued` entry: one statement submits.
CREATE TRIGGER executions_log_queued AFTER INSERT ON executions
BEGIN
    INSERT INTO execution_events (execution_id, at, event, node_id, message, details)
    VALUES (NEW.id, NEW.submitted_at, 'execution_queued', NULL, 'Workflow queued', NULL);
END;
