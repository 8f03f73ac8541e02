-- Indexes for the console's filters (CONSOLE.md "Scale"): children of a workflow, and a
-- queue's history. Partial: workflows without a parent or a queue add no entry to them.
CREATE INDEX workflow_status_parent_idx ON workflow_status (parent_workflow_id, created_at)
    WHERE parent_workflow_id IS NOT NULL;
CREATE INDEX workflow_status_queue_idx ON workflow_status (queue_name, created_at)
    WHERE queue_name IS NOT NULL;
