-- Heartbeat checks' state, so a restart does not forget yesterday's ping:
-- the latest success, start and fail signals, the last run's duration, when
-- keeper first saw the check, and the ping token keeper generated for it
-- (NULL when the config sets the token). Timestamps are unix milliseconds.
CREATE TABLE heartbeats (
    check_name   TEXT    PRIMARY KEY,
    token        TEXT,
    first_seen   INTEGER NOT NULL,
    last_success INTEGER,
    last_start   INTEGER,
    last_fail    INTEGER,
    last_run_s   REAL
);
