-- Several keeper instances on one database (issue 12): an outbox row is sent
-- by the instance that claimed it. `claimed_by` names the instance and
-- `claimed_until` ends its claim: past it, another instance may take the row
-- (its claimer died mid-send). Both are cleared with the outcome of a send.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMPTZ;
-- Which channels someone is sending to now (their rows go in order, by one instance).
CREATE INDEX outbox_claimed ON outbox (channel, claimed_until)
    WHERE status = 'pending' AND claimed_by IS NOT NULL;
