-- SQLite's landing table for new samples (see migrations/sqlite). PostgreSQL
-- writes samples straight into `samples`, so this one stays empty; it exists
-- so that the reads both backends share (store/sql/samples.rs) name the
-- same tables. Same columns as `samples`.
CREATE TABLE samples_recent (
    check_name  TEXT             NOT NULL,
    at          TIMESTAMPTZ      NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    up          BOOLEAN          NOT NULL,
    color       TEXT             NOT NULL,
    status_code INTEGER,
    latency_ms  DOUBLE PRECISION NOT NULL,
    message     TEXT             NOT NULL,
    metrics     TEXT,
    region      TEXT
);
