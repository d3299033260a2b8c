-- Where SQLite's sample writer puts new samples first (store/sqlite.rs): a
-- table without an index, so a batch only appends to its last pages. Every
-- few minutes (or 20,000 rows) the writer moves them into `samples` in one
-- transaction, sorted by check, so each check's page of the
-- `(check_name, at)` index is written once per move instead of once per
-- sample. Reads take both tables in one statement (store/sql/samples.rs),
-- so a sample is counted once, wherever it is. Same columns as `samples`.
CREATE TABLE samples_recent (
    check_name  TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    duration_ms REAL    NOT NULL,
    up          INTEGER NOT NULL,
    color       TEXT    NOT NULL,
    status_code INTEGER,
    latency_ms  REAL    NOT NULL,
    message     TEXT    NOT NULL,
    metrics     TEXT,
    region      TEXT
);
