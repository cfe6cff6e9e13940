-- What every process of one fleet must share (fleet/identity.py): the first process to start
-- records where outputs are stored and a fingerprint of the URL-signing secret; a process
-- whose storage or secret differs refuses to start.
CREATE TABLE fleet_identity (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    storage             TEXT NOT NULL,
    secret_fingerprint  TEXT NOT NULL,
    recorded_by         TEXT NOT NULL,
    recorded_at         DOUBLE PRECISION NOT NULL
);
