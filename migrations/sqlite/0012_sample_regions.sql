-- The region a sample was taken from: set for checks with `regions`
-- (DESIGN.md §11), which run on PostgreSQL only; kept here so both backends
-- have one schema. NULL otherwise.
ALTER TABLE samples ADD COLUMN region TEXT;
