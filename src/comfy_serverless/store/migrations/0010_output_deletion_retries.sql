-- Outputs whose deletion failed: how many times the retention cleaner tried, and when it may
-- try again, so that files it cannot delete wait their turn instead of blocking the batch.
ALTER TABLE outputs ADD COLUMN delete_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outputs ADD COLUMN delete_retry_at DOUBLE PRECISION;
