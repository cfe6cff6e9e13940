-- Each worker publishes its ComfyUI's /object_info; identical catalogs are stored once.
CREATE TABLE node_catalogs (
    hash         TEXT PRIMARY KEY,
    object_info  TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL
);
ALTER TABLE workers ADD COLUMN catalog_hash TEXT;
