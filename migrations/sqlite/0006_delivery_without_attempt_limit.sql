-- Delivery no longer gives up after 8 attempts (issue 9): a transient failure
-- is retried until delivery.max_age (default 24h) after the row was queued.
-- Rows the old rule gave up on ("… (gave up after N attempts)") that are
-- younger than the default 24h are due again now, unless a later row of the
-- same incident already reached the same channel (it would arrive out of order).
UPDATE outbox
SET status = 'pending',
    next_attempt_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
WHERE status = 'failed'
  AND last_error LIKE '%(gave up after % attempts)'
  AND created_at > (CAST(strftime('%s', 'now') AS INTEGER) - 86400) * 1000
  AND NOT EXISTS (
      SELECT 1 FROM outbox later
      WHERE later.incident_id = outbox.incident_id
        AND later.channel = outbox.channel
        AND later.id > outbox.id
        AND later.status = 'sent'
  );
