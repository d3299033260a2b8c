-- Incidents whose opening was held back (a dependency down, a silence, a
-- maintenance window) have no notified_at until people hear of them.
ALTER TABLE incidents ADD COLUMN notified_at INTEGER;
UPDATE incidents SET notified_at = started_at;

CREATE TABLE silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    check_name TEXT,
    labels     TEXT    NOT NULL DEFAULT '{}',  -- JSON object: every label must match
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    comment    TEXT    NOT NULL DEFAULT '',
    created_by TEXT
);
CREATE INDEX silences_ends_at ON silences (ends_at);
