-- Issue #15 (review): the environments some worker has published, live or long gone, each
-- name at each hash it ran (hash lowercase hex). A submit that asks for an environment no
-- worker ever published is refused; one whose workers are merely gone now (a fleet scaled to
-- zero) is accepted and waits. Written when a worker publishes its catalog with an
-- environment; a worker row is rewritten by its next publication, so the workers table alone
-- would forget the environments a worker ran before.
CREATE TABLE environments_seen (
    name            TEXT NOT NULL,
    hash            TEXT NOT NULL,
    first_seen_at   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, hash)
);
INSERT INTO environments_seen (name, hash, first_seen_at)
SELECT DISTINCT environment_name, LOWER(COALESCE(environment_hash, '')), 0
FROM workers WHERE environment_name IS NOT NULL;
