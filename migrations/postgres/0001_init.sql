-- keeper's schema on PostgreSQL. Keep the steps in step with migrations/sqlite.

CREATE TABLE samples (
    check_name  TEXT             NOT NULL,
    at          TIMESTAMPTZ      NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    up          BOOLEAN          NOT NULL,
    color       TEXT             NOT NULL,
    status_code INTEGER,
    latency_ms  DOUBLE PRECISION NOT NULL,
    message     TEXT             NOT NULL
);
CREATE INDEX samples_check_at ON samples (check_name, at);

CREATE TABLE incidents (
    id              BIGSERIAL   PRIMARY KEY,
    check_name      TEXT        NOT NULL,
    severity        TEXT        NOT NULL,
    color           TEXT        NOT NULL,
    message         TEXT        NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    resolved_at     TIMESTAMPTZ
);
-- At most one open incident per check, enforced by the database.
CREATE UNIQUE INDEX incidents_one_open ON incidents (check_name) WHERE resolved_at IS NULL;
CREATE INDEX incidents_started_at ON incidents (started_at);

CREATE TABLE incident_events (
    id          BIGSERIAL   PRIMARY KEY,
    incident_id BIGINT      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL,
    kind        TEXT        NOT NULL,
    detail      TEXT        NOT NULL
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, at);

CREATE TABLE outbox (
    id              BIGSERIAL   PRIMARY KEY,
    incident_id     BIGINT      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    channel         TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ
);
-- Due lookup: only pending rows are indexed.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_incident ON outbox (incident_id);
