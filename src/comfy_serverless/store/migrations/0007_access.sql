-- Access control: per-key limit overrides, rotation, idempotency keys and monthly usage.
ALTER TABLE api_keys ADD COLUMN custom_limits TEXT;
ALTER TABLE api_keys ADD COLUMN rotated_at DOUBLE PRECISION;

-- A request key (X-Request-ID / Idempotency-Key) names one execution of one API key for 24 h.
CREATE TABLE idempotency_keys (
    api_key_id    TEXT NOT NULL REFERENCES api_keys (id),
    request_key   TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    execution_id  TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    created_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (api_key_id, request_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Executions accepted per key and calendar month (UTC), counted in the submit transaction.
CREATE TABLE key_usage (
    api_key_id  TEXT NOT NULL REFERENCES api_keys (id),
    period      TEXT NOT NULL,
    executions  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (api_key_id, period)
);
