-- Several keeper instances on one database (DESIGN.md §11): who is alive,
-- and which instance owns each check (and each cluster-wide duty) for now.

-- Each instance upserts its row every renewal; a row not seen for a lease
-- is a member gone.
CREATE TABLE cluster_members (
    name TEXT PRIMARY KEY,
    region TEXT NOT NULL DEFAULT '',
    -- Random per start: two processes heartbeating one name are told apart.
    incarnation TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);

-- One row per check (region '' unless the check lists regions) and per duty
-- (region '@duty'). `owner` may act on it until `expires_at`; a lease past
-- `expires_at` may be taken by anyone. `view` is the owner's latest status of
-- the check (JSON), so every instance shows the cluster's view, and the next
-- owner starts from it.
CREATE TABLE check_leases (
    check_name TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    view TEXT,
    PRIMARY KEY (check_name, region)
);
CREATE INDEX check_leases_owner ON check_leases (owner);
