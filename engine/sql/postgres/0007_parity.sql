-- Parity with DBOS (issue 15).

-- Workflow attributes: searchable business keys, a JSON object of scalars, matched by
-- containment (attributes @> '{"customer": "42"}') through a GIN index.
ALTER TABLE workflow_status ADD COLUMN attributes JSONB;
CREATE INDEX workflow_status_attributes_idx ON workflow_status
    USING GIN (attributes jsonb_path_ops) WHERE attributes IS NOT NULL;

-- Queue control, seen by every worker: a pause, and limits that override the declared ones.
-- limits: a JSON object holding only the limits changed (|| merges a change in, so two
-- operators changing different limits at once both hold); "no limit" is 0 for the
-- concurrencies and [] for rate_limit ([max_starts, period_seconds] otherwise).
CREATE TABLE queue_settings (
    queue_name TEXT PRIMARY KEY,
    paused     BOOLEAN NOT NULL DEFAULT FALSE,
    limits     JSONB NOT NULL DEFAULT '{}',
    updated_at BIGINT NOT NULL
);

-- Partitioned queues: a workflow's partition (a tenant, say) within its queue; at most
-- partition_concurrency of one partition run at once, and partitions are served in turn.
ALTER TABLE workflow_status ADD COLUMN partition_key TEXT;
CREATE INDEX workflow_status_partition_idx
    ON workflow_status (queue_name, partition_key, status, priority, created_at)
    WHERE partition_key IS NOT NULL AND status IN ('ENQUEUED', 'PENDING');

-- Streams: values a workflow appends under a key (ctx.write_stream), read in order from an
-- offset (seq) by anyone; a row with closed = 1 ends the stream. function_id: the step that
-- wrote it, so a fork copies the items of the steps it copies.
CREATE TABLE streams (
    workflow_uuid TEXT NOT NULL,
    key           TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    value         TEXT,
    closed        INTEGER NOT NULL DEFAULT 0,
    function_id   INTEGER NOT NULL,
    PRIMARY KEY (workflow_uuid, key, seq)
);
