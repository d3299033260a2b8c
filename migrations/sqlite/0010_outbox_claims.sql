-- An outbox row is sent by the worker that claimed it (the same columns as on
-- PostgreSQL, where several instances share the outbox; SQLite has one).
-- `claimed_by` names the instance and `claimed_until` (unix ms) ends its
-- claim. Both are cleared with the outcome of a send.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
CREATE INDEX outbox_claimed ON outbox (channel, claimed_until)
    WHERE status = 'pending' AND claimed_by IS NOT NULL;
