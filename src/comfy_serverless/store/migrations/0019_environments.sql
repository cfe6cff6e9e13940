-- Issue #15: environments in the fleet (routing jobs to the workers that have one).
-- executions.environment: the environment a submit asked for, by name (NULL: any worker);
-- executions.environment_hash: the start of that environment's hash (lowercase hex) when the
-- submit pinned one as `name@<hex>` (NULL: any hash). Claims test them beside the GPU types.
ALTER TABLE executions ADD COLUMN environment TEXT;
ALTER TABLE executions ADD COLUMN environment_hash TEXT;
-- What each worker publishes with its catalog: the environment its engine runs (from the
-- installer's record, read at start and after each engine restart; NULL: none), and its node
-- packs as {"verified": [...], "flagged": [...]} (flagged: the install's scan found something).
ALTER TABLE workers ADD COLUMN environment_name TEXT;
ALTER TABLE workers ADD COLUMN environment_hash TEXT;
ALTER TABLE workers ADD COLUMN node_packs TEXT;
-- 1 when its operator declared its GPU type (it then routes by it), 0 when it was detected.
ALTER TABLE workers ADD COLUMN gpu_type_declared INTEGER;
-- The live workers (heartbeat_at within the live window): a status's note on why a queued
-- execution waits, and the verified node packs, read them without reading departed workers.
CREATE INDEX workers_by_heartbeat ON workers (heartbeat_at);
