-- A new execution logs its own `execution_queued` entry and wakes the workers (NOTIFY is
-- delivered when the inserting transaction commits): one statement submits.
CREATE FUNCTION executions_log_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO execution_events (execution_id, at, event, node_id, message, details)
    VALUES (NEW.id, NEW.submitted_at, 'execution_queued', NULL, 'Workflow queued', NULL);
    PERFORM pg_notify('comfy_serverless_work', NEW.id);
    RETURN NEW;
END
$$;
CREATE TRIGGER executions_log_queued AFTER INSERT ON executions
    FOR EACH ROW EXECUTE FUNCTION executions_log_queued();
