-- Log lines posted to one instance's `/ingest/{source}`, kept a few minutes
-- for the other instances on the database (PostgreSQL only: SQLite serves one
-- instance, and keeper writes no rows here on it; the table keeps the two
-- backends' steps the same). Timestamps are unix milliseconds.
CREATE TABLE ingested (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT    NOT NULL,
    source TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    lines  TEXT    NOT NULL
);
CREATE INDEX ingested_at ON ingested (at);
