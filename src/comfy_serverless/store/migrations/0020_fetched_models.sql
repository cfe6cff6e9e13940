-- Issue #15: models fetched by source, in the fleet's model list and in preloads.
-- worker_models.sources: for a file placed from the worker's model cache, a JSON array of
-- the sources it was fetched from ({"display", "host", "key"}: the display form, never a
-- query string or a credential; the host its tier allowlist is matched against; the cache
-- key of the source). NULL for an ordinary file of the folder.
ALTER TABLE worker_models ADD COLUMN sources TEXT;
-- model_preloads.source: a preload by source (the value as the client gave it, fetched by
-- the workers); source_sha256 its pin; allowed_hosts the requesting tier's model_sources
-- (JSON), the workers' policy for the fetch. All NULL for a preload by model_id.
ALTER TABLE model_preloads ADD COLUMN source TEXT;
ALTER TABLE model_preloads ADD COLUMN source_sha256 TEXT;
ALTER TABLE model_preloads ADD COLUMN allowed_hosts TEXT;
