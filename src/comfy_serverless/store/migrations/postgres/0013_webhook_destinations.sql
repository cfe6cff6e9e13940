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
SET webhook_destination = lower(substr(webhook_url, 1, 7 + strpos(
    replace(replace(substr(webhook_url, 9), '?', '/'), '#', '/') || '/', '/')))
WHERE webhook_url IS NOT NULL;
UPDATE webhook_endpoints
SET destination = lower(substr(url, 1, 7 + strpos(
    replace(replace(substr(url, 9), '?', '/'), '#', '/') || '/', '/')));
UPDATE webhook_events
SET destination = lower(substr(url, 1, 7 + strpos(
    replace(replace(substr(url, 9), '?', '/'), '#', '/') || '/', '/'))),
    api_key_id = COALESCE(
        (SELECT x.api_key_id FROM executions x WHERE x.id = webhook_events.execution_id),
        (SELECT p.api_key_id FROM webhook_endpoints p WHERE p.id = webhook_events.endpoint_id));
CREATE INDEX webhook_events_delivering ON webhook_events (status, api_key_id, destination);

CREATE OR REPLACE FUNCTION executions_webhook_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now_epoch DOUBLE PRECISION := EXTRACT(EPOCH FROM clock_timestamp());
BEGIN
    INSERT INTO webhook_events (id, execution_id, url, destination, api_key_id, event_type,
                                created_at, max_retries, next_attempt_at)
    VALUES ('evt_' || replace(gen_random_uuid()::text, '-', ''), NEW.id, NEW.webhook_url,
            NEW.webhook_destination, NEW.api_key_id,
            CASE NEW.status WHEN 'processing' THEN 'execution.started'
                            ELSE 'execution.' || NEW.status END,
            now_epoch, COALESCE(NEW.webhook_max_retries, 3), now_epoch);
    PERFORM pg_notify('comfy_serverless_webhooks', NEW.id);
    RETURN NEW;
END
$$;
