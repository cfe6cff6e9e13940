-- SQLite overrides of common.sql.

-- name: notify
SELECT CAST(:channel AS TEXT) AS channel, CAST(:payload AS TEXT) AS payload;

-- name: refresh_planner_statistics
-- SQLite's planner takes the claim-order index by rule; its ANALYZE would read every row.
SELECT 1 AS refreshed;
