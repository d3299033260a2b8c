-- Notifications folded into one message per channel (a route's group_wait)
-- share batch_at: when the window closes and the batch goes out.
ALTER TABLE outbox ADD COLUMN batch_at INTEGER;
