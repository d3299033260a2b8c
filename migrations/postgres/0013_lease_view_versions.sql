-- Narrower lease reads (issue 12). `view_version` changes whenever a lease's
-- view does, to a number never used before (one sequence for every row), and
-- stays when the owner publishes the view it already published: an instance
-- that keeps the views it read fetches again only those whose version moved,
-- instead of every view every renewal.
CREATE SEQUENCE check_leases_view_versions;
ALTER TABLE check_leases
    ADD COLUMN view_version BIGINT NOT NULL DEFAULT nextval('check_leases_view_versions');
