-- Named queries shared by SQLite and PostgreSQL. A dialect file may override a name, and
-- {{row_lock}} becomes the dialect's row lock (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite
-- needs none, its claims run in BEGIN IMMEDIATE transactions); {{row_lock_of_c}} locks only
-- the rows of the table aliased `c` in a join.
-- Every state change says what it expects (status, lease owner, attempt): a guarded update.
-- This file holds the statements that more than one sub-store runs; each other file holds
-- one sub-store's (store/<file>.py).

-- name: insert_execution
INSERT INTO executions (
    id, api_key_id, status, priority, requested_priority, workflow, options, signature,
    webhook_url, webhook_destination, webhook_secret, webhook_max_retries, client_id,
    submitted_at, max_attempts, total_nodes, allowed_gpu_types, required_models, environment,
    environment_hash
) VALUES (
    :id, :api_key_id, 'queued', :priority, :priority, :workflow, :options, :signature,
    :webhook_url, :webhook_destination, :webhook_secret, :webhook_max_retries, :client_id,
    :submitted_at, :max_attempts, :total_nodes, :allowed_gpu_types, :required_models,
    :environment, :environment_hash
);

-- name: insert_event
INSERT INTO execution_events (execution_id, at, event, node_id, message, details)
VALUES (:execution_id, :at, :event, :node_id, :message, :details);

-- name: notify
SELECT pg_notify(:channel, :payload);
