-- keeper's schema on SQLite. Timestamps are INTEGER unix milliseconds (UTC);
-- booleans are INTEGER 0/1. Keep the steps in step with migrations/postgres.

CREATE TABLE samples (
    check_name  TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    duration_ms REAL    NOT NULL,
    up          INTEGER NOT NULL,
    color       TEXT    NOT NULL,
    status_code INTEGER,
    latency_ms  REAL    NOT NULL,
    message     TEXT    NOT NULL
);
CREATE INDEX samples_check_at ON samples (check_name, at);

CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    check_name      TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    color           TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    acknowledged_at INTEGER,
    resolved_at     INTEGER
);
-- At most one open incident per check, enforced by the database.
CREATE UNIQUE INDEX incidents_one_open ON incidents (check_name) WHERE resolved_at IS NULL;
CREATE INDEX incidents_started_at ON incidents (started_at);

CREATE TABLE incident_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, at);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id     INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    channel         TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
-- Due lookup: only pending rows are indexed.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_incident ON outbox (incident_id);
