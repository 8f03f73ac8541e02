-- Partitioned queues serve the partition served least recently first (engine/partitions.py).
-- When it was last served is the latest start of any of its workflows, finished ones too:
-- counted over unfinished rows only, a partition whose workflows had all finished looked
-- never served, and tied with partitions that truly never were (the busy one then won the tie
-- by name, round after round). This index answers that latest start per partition directly.
CREATE INDEX workflow_status_partition_started_idx
    ON workflow_status (queue_name, partition_key, started_at_epoch_ms)
    WHERE partition_key IS NOT NULL;
