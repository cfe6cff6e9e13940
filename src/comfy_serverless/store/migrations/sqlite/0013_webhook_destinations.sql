-- Each webhook event carries its canonical destination (scheme://host:port, the host in
-- lower-case ASCII without a trailing dot, the port explicit; no user info, path or query),
-- worked out from the parsed URL when the execution or endpoint is written, and its API key,
-- so that the dispatcher caps deliveries in flight per destination and per key.
ALTER TABLE executions ADD COLUMN webhook_destination TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN destination TEXT;
ALTER TABLE webhook_events ADD COLUMN destination TEXT;
ALTER TABLE webhook_events ADD COLUMN api_key_id TEXT;

-- Rows written before: the URL's text up to its first '/', as the claim used to read it.
UPDATE executions
SET webhook_destination = lower(substr(webhook_url, 1, 7 + instr(
    replace(replace(substr(webhook_url, 9), '?', '/'), '#', '/') || '/', '/')))
WHERE webhook_url IS NOT NULL;
UPDATE webhook_endpoints
SET destination = lower(substr(url, 1, 7 + instr(
    replace(replace(substr(url, 9), '?', '/'), '#', '/') || '/', '/')));
UPDATE webhook_events
SET destination = lower(substr(url, 1, 7 + instr(
    replace(replace(substr(url, 9), '?', '/'), '#', '/') || '/', '/'))),
    api_key_id = COALESCE(
        (SELECT x.api_key_id FROM executions x WHERE x.id = webhook_events.execution_id),
        (SELECT p.api_key_id FROM webhook_endpoints p WHERE p.id = webhook_events.endpoint_id));
CREATE INDEX webhook_events_delivering ON webhook_events (status, api_key_id, destination);

DROP TRIGGER executions_webhook_event;
CREATE TRIGGER executions_webhook_event AFTER UPDATE OF status ON executions
WHEN NEW.webhook_url IS NOT NULL AND NEW.status <> OLD.status
     AND NEW.status IN ('processing', 'completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO webhook_events (id, execution_id, url, destination, api_key_id, event_type,
                                created_at, max_retries, next_attempt_at)
    VALUES ('evt_' || lower(hex(randomblob(12))), NEW.id, NEW.webhook_url,
            NEW.webhook_destination, NEW.api_key_id,
            CASE NEW.status WHEN 'processing' THEN 'execution.started'
                            ELSE 'execution.' || NEW.status END,
            julianday('now') * 86400.0 - 210866760000.0, COALESCE(NEW.webhook_max_retries, 3),
            julianday('now') * 86400.0 - 210866760000.0);
END;
