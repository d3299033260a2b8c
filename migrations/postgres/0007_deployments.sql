-- Deployments of apps (POST /api/v1/deployments, `keeper deploy`, or the fly
-- check seeing a machine's image or release change), so incidents and
-- reports can say what was deployed before they started.
CREATE TABLE deployments (
    id          BIGSERIAL   PRIMARY KEY,
    app         TEXT        NOT NULL,
    version     TEXT        NOT NULL,
    description TEXT        NOT NULL,
    deployed_by TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX deployments_app_at ON deployments (app, at);
CREATE INDEX deployments_at ON deployments (at);
