-- What a sample measured beyond its latency, as one JSON object
-- ({"cert_days_left": 12.5, "db_size_bytes": 4.5e7, …}); NULL when nothing.
ALTER TABLE samples ADD COLUMN metrics TEXT;
