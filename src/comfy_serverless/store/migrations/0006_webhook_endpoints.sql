-- Endpoints that a key registers for system events (maintenance, capacity, model updates).
CREATE TABLE webhook_endpoints (
    id           TEXT PRIMARY KEY,
    api_key_id   TEXT NOT NULL REFERENCES api_keys (id),
    url          TEXT NOT NULL,
    secret       TEXT,
    events       TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    disabled_at  DOUBLE PRECISION,
    disabled_reason TEXT
);
CREATE INDEX webhook_endpoints_by_key ON webhook_endpoints (api_key_id);
ALTER TABLE webhook_events ADD COLUMN endpoint_id TEXT REFERENCES webhook_endpoints (id);

-- Shared facts that many processes may change at once, with compare-and-set updates.
CREATE TABLE system_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
INSERT INTO system_state (key, value) VALUES ('capacity_band', 'unknown');
