-- SQLite has no notifications: API processes keep a cached key row at most 1 s
-- (auth/key_cache.py's fallback TTL), and evict at once on their own admin routes. This
-- migration keeps the numbering of both dialects the same.
SELECT 1;
