CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    prefix        TEXT NOT NULL UNIQUE,
    secret_hash   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    tier          TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    name          TEXT,
    created_at    DOUBLE PRECISION NOT NULL,
    last_used_at  DOUBLE PRECISION,
    revoked_at    DOUBLE PRECISION
);

CREATE TABLE executions (
    id                  TEXT PRIMARY KEY,
    api_key_id          TEXT NOT NULL REFERENCES api_keys (id),
    status              TEXT NOT NULL,
    priority            INTEGER NOT NULL,
    workflow            TEXT NOT NULL,
    options             TEXT NOT NULL,
    signature           TEXT NOT NULL,
    webhook_url         TEXT,
    client_id           TEXT,
    submitted_at        DOUBLE PRECISION NOT NULL,
    started_at          DOUBLE PRECISION,
    finished_at         DOUBLE PRECISION,
    not_before          DOUBLE PRECISION,
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL DEFAULT 1,
    worker_id           TEXT,
    lease_owner         TEXT,
    lease_expires_at    DOUBLE PRECISION,
    engine_prompt_id    TEXT,
    progress            DOUBLE PRECISION NOT NULL DEFAULT 0,
    current_node        TEXT,
    current_node_id     TEXT,
    current_step        INTEGER,
    total_steps         INTEGER,
    total_nodes         INTEGER NOT NULL,
    completed_nodes     INTEGER NOT NULL DEFAULT 0,
    gpu_time            DOUBLE PRECISION,
    resource_allocation TEXT,
    error               TEXT,
    cancel_reason       TEXT
);
CREATE INDEX executions_claim_order ON executions (priority DESC, submitted_at) WHERE status = 'queued';
CREATE INDEX executions_by_key ON executions (api_key_id, status);

CREATE TABLE execution_events (
    id            BIGSERIAL PRIMARY KEY,
    execution_id  TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    at            DOUBLE PRECISION NOT NULL,
    event         TEXT NOT NULL,
    node_id       TEXT,
    message       TEXT NOT NULL,
    details       TEXT
);
CREATE INDEX execution_events_by_execution ON execution_events (execution_id, id);

CREATE TABLE outputs (
    id                TEXT PRIMARY KEY,
    execution_id      TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    node_id           TEXT NOT NULL,
    output_type       TEXT NOT NULL,
    intermediate      INTEGER NOT NULL DEFAULT 0,
    filename          TEXT NOT NULL,
    content_type      TEXT NOT NULL,
    size_bytes        BIGINT NOT NULL,
    width             INTEGER,
    height            INTEGER,
    format            TEXT,
    storage_provider  TEXT NOT NULL,
    storage_bucket    TEXT,
    storage_key       TEXT NOT NULL,
    created_at        DOUBLE PRECISION NOT NULL
);
CREATE INDEX outputs_by_execution ON outputs (execution_id);

CREATE TABLE workers (
    id                    TEXT PRIMARY KEY,
    started_at            DOUBLE PRECISION NOT NULL,
    heartbeat_at          DOUBLE PRECISION NOT NULL,
    state                 TEXT NOT NULL,
    gpu_type              TEXT,
    system_stats          TEXT,
    current_execution_id  TEXT
);
