-- The event stream of one execution (migration 0015): rows after a given number, in order.

-- name: stream_after
SELECT seq, at, kind, data FROM execution_stream
WHERE execution_id = :execution_id AND seq > :after
ORDER BY seq LIMIT :limit;

-- name: stream_end
SELECT seq FROM execution_stream WHERE execution_id = :execution_id AND kind = 'end'
ORDER BY seq LIMIT 1;

-- name: output_by_id
SELECT * FROM outputs WHERE id = :id AND execution_id = :execution_id;
