-- Parity with DBOS (issue 15).

-- Workflow attributes: searchable business keys, a JSON object of scalars. SQLite cannot index
-- every key of a JSON column, so the pairs are kept in workflow_attributes too (one row per
-- key, its value in canonical JSON), by triggers: every path that writes the column (start,
-- set_attributes, and any later import) keeps the index in step without knowing about it.
ALTER TABLE workflow_status ADD COLUMN attributes TEXT;

CREATE TABLE workflow_attributes (
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    workflow_uuid TEXT NOT NULL,
    PRIMARY KEY (key, value, workflow_uuid)
) WITHOUT ROWID;
CREATE INDEX workflow_attributes_workflow_idx ON workflow_attributes (workflow_uuid);

-- Canonical JSON of a scalar as json_each reports it (true/false come back as 1/0 there).
CREATE TRIGGER workflow_attributes_insert AFTER INSERT ON workflow_status
WHEN NEW.attributes IS NOT NULL
BEGIN
    INSERT INTO workflow_attributes (key, value, workflow_uuid)
    SELECT key,
           CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                     WHEN 'null' THEN 'null' ELSE json_quote(value) END,
           NEW.workflow_uuid
    FROM json_each(NEW.attributes);
END;

CREATE TRIGGER workflow_attributes_update AFTER UPDATE OF attributes ON workflow_status
BEGIN
    DELETE FROM workflow_attributes WHERE workflow_uuid = OLD.workflow_uuid;
    INSERT INTO workflow_attributes (key, value, workflow_uuid)
    SELECT key,
           CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                     WHEN 'null' THEN 'null' ELSE json_quote(value) END,
           NEW.workflow_uuid
    FROM json_each(coalesce(NEW.attributes, '{}'));
END;

CREATE TRIGGER workflow_attributes_delete AFTER DELETE ON workflow_status
BEGIN
    DELETE FROM workflow_attributes WHERE workflow_uuid = OLD.workflow_uuid;
END;

-- Queue control, seen by every worker: a pause, and limits that override the declared ones.
-- limits: a JSON object holding only the limits changed (json_patch merges a change in, so
-- two operators changing different limits at once both hold); "no limit" is 0 for the
-- concurrencies and [] for rate_limit ([max_starts, period_seconds] otherwise).
CREATE TABLE queue_settings (
    queue_name TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    limits     TEXT NOT NULL DEFAULT '{}',
    updated_at INTEGER NOT NULL
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
