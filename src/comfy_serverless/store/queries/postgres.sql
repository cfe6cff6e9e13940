-- PostgreSQL overrides of the shared queries.

-- name: lock_tier_queue
-- Admissions near a tier's max_queue_size take turns (released at commit).
SELECT pg_advisory_xact_lock(hashtext('comfy_serverless.tier_queue:' || CAST(:tier AS TEXT)));
