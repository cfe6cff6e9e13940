-- Named queries for the models side of the store (issue #8), shared by SQLite and PostgreSQL.

-- name: delete_worker_models
DELETE FROM worker_models WHERE worker_id = :worker_id;

-- name: insert_worker_model
INSERT INTO worker_models (worker_id, folder, filename, size_bytes, mtime, sha256, capabilities,
                           sources)
VALUES (:worker_id, :folder, :filename, :size_bytes, :mtime, :sha256, :capabilities, :sources);

-- name: fleet_models
-- The model files of the workers heard from since :since, with each worker's region and the
-- models warm in its ComfyUI.
SELECT m.worker_id, m.folder, m.filename, m.size_bytes, m.mtime, m.sha256, m.capabilities,
       m.sources, w.region, w.warm_models
FROM worker_models m JOIN workers w ON w.id = m.worker_id
WHERE w.heartbeat_at >= :since AND w.state <> 'stopped'
ORDER BY m.folder, m.filename, m.worker_id;

-- name: placed_models
-- The files placed from the model caches of the workers heard from since :since (for who
-- may see or name them): the same workers, stopped or not, as the catalogs validated
-- against (workers.sql catalog_hashes_since, worker_packs_since).
SELECT m.filename, m.sources
FROM worker_models m JOIN workers w ON w.id = m.worker_id
WHERE m.sources IS NOT NULL AND w.heartbeat_at >= :since;

-- name: insert_preload
INSERT INTO model_preloads (id, api_key_id, model_id, folder, filename, priority, regions,
                            requested_at, expires_at, source, source_sha256, allowed_hosts)
VALUES (:id, :api_key_id, :model_id, :folder, :filename, :priority, :regions, :requested_at,
        :expires_at, :source, :source_sha256, :allowed_hosts);

-- name: active_preloads
SELECT * FROM model_preloads WHERE expires_at > :now ORDER BY priority DESC, requested_at;

-- name: recent_model_loads
SELECT details FROM execution_events WHERE event = 'model_loaded' ORDER BY id DESC LIMIT :limit;

-- name: recent_model_runs
SELECT required_models, finished_at - started_at AS seconds FROM executions
WHERE status = 'completed' AND required_models IS NOT NULL AND required_models <> '[]'
ORDER BY finished_at DESC
LIMIT :limit;

-- name: forget_departed_worker_models
-- The model folders of workers not heard from since :before (gone, or renamed by a restart).
DELETE FROM worker_models
WHERE worker_id NOT IN (SELECT id FROM workers WHERE heartbeat_at >= :before);

-- name: forget_expired_preloads
DELETE FROM model_preloads WHERE expires_at < :before;
