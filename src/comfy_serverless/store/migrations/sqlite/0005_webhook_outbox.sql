-- The webhook outbox. A status change of an execution that has a webhook URL writes its
-- event in the same transaction (a trigger); the dispatcher delivers and logs each attempt.
CREATE TABLE webhook_events (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    execution_id      TEXT REFERENCES executions (id) ON DELETE CASCADE,
    url               TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    data              TEXT,
    payload           TEXT,
    created_at        DOUBLE PRECISION NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending',
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_retries       INTEGER NOT NULL,
    next_attempt_at   DOUBLE PRECISION NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  DOUBLE PRECISION
);
CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);
CREATE INDEX webhook_events_by_execution ON webhook_events (execution_id, seq);

CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    at           DOUBLE PRECISION NOT NULL,
    status_code  INTEGER,
    latency_ms   DOUBLE PRECISION,
    error        TEXT
);
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id, id);

ALTER TABLE executions ADD COLUMN webhook_secret TEXT;
ALTER TABLE executions ADD COLUMN webhook_max_retries INTEGER;

CREATE TRIGGER executions_webhook_event AFTER UPDATE OF status ON executions
WHEN NEW.webhook_url IS NOT NULL AND NEW.status <> OLD.status
     AND NEW.status IN ('processing', 'completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO webhook_events (id, execution_id, url, event_type, created_at, max_retries,
                                next_attempt_at)
    VALUES ('evt_' || lower(hex(randomblob(12))), NEW.id, NEW.webhook_url,
            CASE NEW.status WHEN 'processing' THEN 'execution.started'
                            ELSE 'execution.' || NEW.status END,
            julianday('now') * 86400.0 - 210866760000.0, COALESCE(NEW.webhook_max_retries, 3),
            julianday('now') * 86400.0 - 210866760000.0);
END;
