-- A test message a secretary sends to a directory entry (POST …/recipients/{id}/test) goes through
-- the same outbox as everything else, as kind 'test': no acknowledgement watch, no SLA figure.
ALTER TABLE notify_deliveries DROP CONSTRAINT IF EXISTS notify_deliveries_kind_check;
ALTER TABLE notify_deliveries ADD CONSTRAINT notify_deliveries_kind_check
    CHECK (kind IN ('escalation', 'overdue', 'digest', 'test'));
