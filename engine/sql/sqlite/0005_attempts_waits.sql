-- Step attempts and tracebacks, and what a PENDING workflow waits on (issue #12).
-- operation_attempts: one row per failed attempt of a step, numbered from 1 (written only when
-- an attempt fails: failures are off the step hot path).
CREATE TABLE operation_attempts (
    workflow_uuid         TEXT NOT NULL REFERENCES workflow_status (workflow_uuid)
                              ON UPDATE CASCADE ON DELETE CASCADE,
    function_id           INTEGER NOT NULL,
    attempt               INTEGER NOT NULL,
    error                 TEXT,
    traceback             TEXT,
    started_at_epoch_ms   INTEGER,
    completed_at_epoch_ms INTEGER,
    PRIMARY KEY (workflow_uuid, function_id, attempt)
);
-- The traceback of a workflow that ended in ERROR (capped text).
ALTER TABLE workflow_status ADD COLUMN traceback TEXT;
-- What a PENDING workflow waits on (JSON: kind, topic/key/child, since, until); NULL when it
-- is not waiting. Written when a wait starts, cleared with the checkpoint that ends it.
ALTER TABLE workflow_status ADD COLUMN waiting TEXT;
