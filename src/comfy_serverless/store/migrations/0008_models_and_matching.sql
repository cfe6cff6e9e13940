-- Issue #8: what the workers' ComfyUI instances hold, preloads, and claim-time matching.
-- executions.allowed_gpu_types: JSON array of GPU types the execution may run on (NULL: any;
-- "all" matches every type). executions.required_models: JSON array of the model files its
-- loader nodes name, for model affinity at claim time.
ALTER TABLE executions ADD COLUMN allowed_gpu_types TEXT;
ALTER TABLE executions ADD COLUMN required_models TEXT;
-- workers.warm_models: JSON array of the model files its ComfyUI holds in its cache now.
ALTER TABLE workers ADD COLUMN region TEXT;
ALTER TABLE workers ADD COLUMN warm_models TEXT;

-- Each worker's model folders, as its ComfyUI sees them (replaced whole at each publication).
CREATE TABLE worker_models (
    worker_id     TEXT NOT NULL,
    folder        TEXT NOT NULL,
    filename      TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    mtime         DOUBLE PRECISION NOT NULL,
    sha256        TEXT,
    capabilities  TEXT,
    PRIMARY KEY (worker_id, folder, filename)
);

-- POST /v1/models/preload: workers in the named regions keep the model warm until expires_at.
CREATE TABLE model_preloads (
    id            TEXT PRIMARY KEY,
    api_key_id    TEXT NOT NULL REFERENCES api_keys (id),
    model_id      TEXT NOT NULL,
    folder        TEXT NOT NULL,
    filename      TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    regions       TEXT,
    requested_at  DOUBLE PRECISION NOT NULL,
    expires_at    DOUBLE PRECISION NOT NULL
);
CREATE INDEX model_preloads_by_expiry ON model_preloads (expires_at);
