-- Control and time: FIFO order for messages, and the index the internal queue claims from.

-- Messages are received oldest first; created_at_epoch_ms alone ties within a millisecond.
ALTER TABLE notifications ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
DROP INDEX notifications_destination_idx;
CREATE INDEX notifications_destination_idx ON notifications (destination_uuid, topic, seq);

CREATE INDEX workflow_status_enqueued_idx ON workflow_status (queue_name, priority, created_at)
    WHERE status = 'ENQUEUED';
