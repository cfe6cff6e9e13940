-- Outputs: when each expires (output_config.storage.retention_days), when the retention
-- cleaner deleted it from storage, and whether its URL is a plain public one.
ALTER TABLE outputs ADD COLUMN expires_at DOUBLE PRECISION;
ALTER TABLE outputs ADD COLUMN deleted_at DOUBLE PRECISION;
ALTER TABLE outputs ADD COLUMN public_access INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outputs_due_for_deletion ON outputs (expires_at)
    WHERE expires_at IS NOT NULL AND deleted_at IS NULL;
