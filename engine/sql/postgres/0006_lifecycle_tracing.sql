-- Tracing: the W3C traceparent of the caller that started the workflow (its executions and
-- steps continue that trace). Data lifecycle: garbage collection finds old final workflows by
-- completion time without scanning the table.
ALTER TABLE workflow_status ADD COLUMN traceparent TEXT;
CREATE INDEX workflow_status_completed_idx ON workflow_status (completed_at, workflow_uuid)
    WHERE status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED');
