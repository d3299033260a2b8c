-- The region a sample was taken from: set for checks with `regions`
-- (DESIGN.md §11), each region's instance storing its own; NULL otherwise.
ALTER TABLE samples ADD COLUMN region TEXT;
