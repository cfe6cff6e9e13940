-- SQLite overrides of common.sql.

-- name: notify
SELECT CAST(:channel AS TEXT) AS channel, CAST(:payload AS TEXT) AS payload;
