-- Workers and catalogs: heartbeats, the node catalogs workers publish, shared state.
-- Used by store/workers.py.

-- name: upsert_worker
INSERT INTO workers (id, started_at, heartbeat_at, state, gpu_type, system_stats,
                     current_execution_id, region, warm_models, gpu_type_declared)
VALUES (:id, :now, :now, :state, :gpu_type, :system_stats, :current_execution_id, :region,
        :warm_models, :gpu_type_declared)
ON CONFLICT (id) DO UPDATE SET
    heartbeat_at = excluded.heartbeat_at, state = excluded.state,
    gpu_type = excluded.gpu_type, gpu_type_declared = excluded.gpu_type_declared,
    system_stats = COALESCE(excluded.system_stats, workers.system_stats),
    current_execution_id = excluded.current_execution_id, region = excluded.region,
    warm_models = excluded.warm_models;

-- name: insert_catalog
INSERT INTO node_catalogs (hash, object_info, created_at) VALUES (:hash, :object_info, :now)
ON CONFLICT (hash) DO NOTHING;

-- name: set_worker_catalog
-- The catalog, and the environment the worker's engine runs (migration 0019).
UPDATE workers
SET catalog_hash = :hash, environment_name = :environment_name,
    environment_hash = :environment_hash, node_packs = :node_packs
WHERE id = :worker_id;

-- name: catalog_hashes_since
SELECT DISTINCT catalog_hash AS hash FROM workers
WHERE catalog_hash IS NOT NULL AND heartbeat_at >= :since;

-- name: insert_environment_seen
-- An environment a worker publishes (migration 0021); a submit asks whether one exists.
INSERT INTO environments_seen (name, hash, first_seen_at) VALUES (:name, :hash, :now)
ON CONFLICT (name, hash) DO NOTHING;

-- name: environment_seen
-- Some worker once published `name` at a hash that starts with :hash_prefix ('' for any);
-- the prefix is hexadecimal digits only, so LIKE has no wildcard in it but its own.
SELECT 1 AS seen FROM environments_seen
WHERE name = :name AND hash LIKE :hash_prefix || '%' LIMIT 1;

-- name: worker_packs_since
-- Each live worker's catalog and the node packs it publishes (NULL: it runs no environment).
SELECT catalog_hash, node_packs FROM workers
WHERE catalog_hash IS NOT NULL AND heartbeat_at >= :since;

-- name: catalog_by_hash
SELECT object_info FROM node_catalogs WHERE hash = :hash;

-- name: get_state
SELECT value FROM system_state WHERE key = :key;

-- name: compare_and_set_state
UPDATE system_state SET value = :new WHERE key = :key AND value = :old;

-- name: worker_catalog_hash
SELECT catalog_hash FROM workers WHERE id = :worker_id;

-- name: live_workers
SELECT id, state, gpu_type, system_stats, region, gpu_type_declared, environment_name,
       environment_hash
FROM workers
WHERE heartbeat_at >= :since AND state <> 'stopped' ORDER BY id;
