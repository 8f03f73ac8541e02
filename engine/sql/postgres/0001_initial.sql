-- The system tables, shaped after the DBOS system schema: same table and column names where a
-- concept is shared, times in epoch milliseconds, payloads as portable_json text.
-- Workflow IDs use the "C" collation: they are opaque keys, and so the primary key's index
-- also serves ID-prefix searches (LIKE 'prefix%'), which a linguistic collation prevents.

CREATE TABLE workflow_status (
    workflow_uuid              TEXT COLLATE "C" PRIMARY KEY,
    status                     TEXT NOT NULL,
    name                       TEXT NOT NULL,
    inputs                     TEXT,
    output                     TEXT,
    error                      TEXT,
    executor_id                TEXT,
    application_version        TEXT,
    application_id             TEXT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    recovery_attempts          BIGINT NOT NULL DEFAULT 0,
    queue_name                 TEXT,
    workflow_timeout_ms        BIGINT,
    workflow_deadline_epoch_ms BIGINT,
    started_at_epoch_ms        BIGINT,
    completed_at               BIGINT,
    deduplication_id           TEXT,
    priority                   INTEGER NOT NULL DEFAULT 0,
    forked_from                TEXT,
    parent_workflow_id         TEXT,
    serialization              TEXT NOT NULL DEFAULT 'portable_json'
);

-- Listing newest first, alone or by one filter (the engine's list_workflows and the console).
CREATE INDEX workflow_status_created_at_idx ON workflow_status (created_at, workflow_uuid);
CREATE INDEX workflow_status_status_idx ON workflow_status (status, created_at);
CREATE INDEX workflow_status_name_idx ON workflow_status (name, created_at);
-- Recovery scans only unfinished work, so the index stays small however long the history.
CREATE INDEX workflow_status_unfinished_idx ON workflow_status (executor_id, application_version)
    WHERE status IN ('PENDING', 'ENQUEUED');

CREATE TABLE operation_outputs (
    workflow_uuid         TEXT COLLATE "C" NOT NULL REFERENCES workflow_status (workflow_uuid)
                              ON UPDATE CASCADE ON DELETE CASCADE,
    function_id           INTEGER NOT NULL,
    function_name         TEXT NOT NULL,
    output                TEXT,
    error                 TEXT,
    child_workflow_id     TEXT,
    started_at_epoch_ms   BIGINT,
    completed_at_epoch_ms BIGINT,
    serialization         TEXT NOT NULL DEFAULT 'portable_json',
    PRIMARY KEY (workflow_uuid, function_id)
);

CREATE TABLE notifications (
    destination_uuid   TEXT COLLATE "C" NOT NULL REFERENCES workflow_status (workflow_uuid)
                           ON UPDATE CASCADE ON DELETE CASCADE,
    topic              TEXT,
    message            TEXT NOT NULL,
    created_at_epoch_ms BIGINT NOT NULL,
    message_uuid       TEXT PRIMARY KEY,
    serialization      TEXT NOT NULL DEFAULT 'portable_json'
);
CREATE INDEX notifications_destination_idx ON notifications (destination_uuid, topic, created_at_epoch_ms);

CREATE TABLE workflow_events (
    workflow_uuid TEXT COLLATE "C" NOT NULL REFERENCES workflow_status (workflow_uuid)
                      ON UPDATE CASCADE ON DELETE CASCADE,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    serialization TEXT NOT NULL DEFAULT 'portable_json',
    PRIMARY KEY (workflow_uuid, key)
);
