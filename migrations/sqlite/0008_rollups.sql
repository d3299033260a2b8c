-- Hourly rollups of the samples (DESIGN.md §6): per check and hour (unix
-- milliseconds of the hour's start), how many samples, how many up, and the
-- latency's p50, p95 (nearest rank) and max over all of the hour's samples.
-- Kept 400 days, while raw samples go after `storage.retention`, so uptime over
-- 30 or 90 days and latency history outlive them. Written only by the rollup
-- task (store/rollup.rs), as an upsert: rolling an hour up again is harmless.
CREATE TABLE rollups (
    check_name  TEXT    NOT NULL,
    hour        INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    latency_p50 REAL    NOT NULL,
    latency_p95 REAL    NOT NULL,
    latency_max REAL    NOT NULL,
    PRIMARY KEY (check_name, hour)
);
-- The latest hour rolled up, the rollups of a window for every check, retention.
CREATE INDEX rollups_hour ON rollups (hour);
-- Each day's sums of the hourly rollups (day: unix milliseconds of its UTC
-- start), kept alongside them, so 90 days of uptime for every check read 90
-- rows per check, not 2,160.
CREATE TABLE rollup_days (
    check_name TEXT    NOT NULL,
    day        INTEGER NOT NULL,
    total      INTEGER NOT NULL,
    ok         INTEGER NOT NULL,
    PRIMARY KEY (check_name, day)
);
CREATE INDEX rollup_days_day ON rollup_days (day);
-- One hour of samples of every check, read by the rollup (and retention's cut).
CREATE INDEX samples_at ON samples (at);
