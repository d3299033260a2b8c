-- Log lines posted to one instance's `/ingest/{source}`, kept a few minutes
-- so every other instance on the database feeds them to its own log check
-- (told by NOTIFY keeper_events, or finding them on its periodic re-read).
-- `origin` is the receiving instance (it skips its own rows); `lines` is a
-- JSON array of the raw lines.
CREATE TABLE ingested (
    id     BIGSERIAL   PRIMARY KEY,
    origin TEXT        NOT NULL,
    source TEXT        NOT NULL,
    at     TIMESTAMPTZ NOT NULL,
    lines  TEXT        NOT NULL
);
CREATE INDEX ingested_at ON ingested (at);
