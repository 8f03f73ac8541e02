-- Workers at scale: executors with heartbeats, queue limits, delayed starts, deduplication.

CREATE TABLE executors (
    executor_id         TEXT PRIMARY KEY,
    application_version TEXT NOT NULL,
    hostname            TEXT,
    pid                 INTEGER,
    queues              TEXT,     -- JSON: the queues it serves, with their limits
    schedules           TEXT,     -- JSON: its scheduled workflows and their cron
    started_at          BIGINT NOT NULL,
    last_heartbeat      BIGINT NOT NULL
);

ALTER TABLE workflow_status ADD COLUMN delay_until_epoch_ms BIGINT;

-- A deduplication ID is refused only while a workflow holding it is ENQUEUED or PENDING.
CREATE UNIQUE INDEX workflow_status_dedup_idx ON workflow_status (queue_name, deduplication_id)
    WHERE deduplication_id IS NOT NULL AND status IN ('ENQUEUED', 'PENDING', 'DELAYED');
-- Queue budgets: running per queue, and starts within a rate-limit period.
CREATE INDEX workflow_status_queue_started_idx ON workflow_status (queue_name, started_at_epoch_ms)
    WHERE queue_name IS NOT NULL;
CREATE INDEX workflow_status_delayed_idx ON workflow_status (delay_until_epoch_ms)
    WHERE status = 'DELAYED';
