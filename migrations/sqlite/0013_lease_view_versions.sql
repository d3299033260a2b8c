-- Narrower lease reads (issue 12): the column exists here too so both
-- backends stay at one schema version (several instances share PostgreSQL
-- only). `view_version` changes whenever a lease's view does.
ALTER TABLE check_leases ADD COLUMN view_version INTEGER NOT NULL DEFAULT 0;
