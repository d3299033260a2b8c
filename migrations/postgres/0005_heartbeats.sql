-- Heartbeat checks' state, so a restart does not forget yesterday's ping:
-- the latest success, start and fail signals, the last run's duration, when
-- keeper first saw the check, and the ping token keeper generated for it
-- (NULL when the config sets the token).
CREATE TABLE heartbeats (
    check_name   TEXT             PRIMARY KEY,
    token        TEXT,
    first_seen   TIMESTAMPTZ      NOT NULL,
    last_success TIMESTAMPTZ,
    last_start   TIMESTAMPTZ,
    last_fail    TIMESTAMPTZ,
    last_run_s   DOUBLE PRECISION
);
