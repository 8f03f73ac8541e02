-- Cancel, resume and fork on a DBOS system database, by DBOS's own protocol (dbos-py 3.x).
-- {dbos} is the schema-qualifying prefix ("dbos". on Postgres, main. on SQLite), never a value;
-- every value is a parameter.

-- cancel --
-- CANCELLED, off its queue, its dedup ID released (a later enqueue with it is accepted again).
UPDATE {dbos}workflow_status
SET status = 'CANCELLED', owner_xid = NULL, queue_name = NULL, deduplication_id = NULL,
    started_at_epoch_ms = NULL, updated_at = %(now)s, completed_at = %(now)s
WHERE workflow_uuid = %(id)s AND status NOT IN ('SUCCESS', 'ERROR');

-- children --
-- A workflow's direct children (a cancel with its children walks them level by level).
SELECT workflow_uuid FROM {dbos}workflow_status WHERE parent_workflow_id = %(id)s;

-- resume --
-- ENQUEUED on DBOS's internal queue (every DBOS process serves it), attempts reset.
UPDATE {dbos}workflow_status
SET status = 'ENQUEUED', owner_xid = NULL, queue_name = '_dbos_internal_queue',
    recovery_attempts = 0, workflow_deadline_epoch_ms = NULL, deduplication_id = NULL,
    started_at_epoch_ms = NULL, updated_at = %(now)s, completed_at = NULL
WHERE workflow_uuid = %(id)s AND status NOT IN ('SUCCESS', 'ERROR');

-- fork_status --
-- The fork: a new ENQUEUED row on the internal queue with the original's name, class,
-- serialization and owner, forked_from set.
INSERT INTO {dbos}workflow_status
  (workflow_uuid, status, name, class_name, config_name, application_version, application_id,
   authenticated_user, authenticated_roles, assumed_role, serialization, queue_name,
   forked_from, attributes, application_name, created_at, updated_at, priority,
   recovery_attempts)
SELECT %(new)s, 'ENQUEUED', name, class_name, config_name,
       COALESCE(%(version)s, application_version), application_id, authenticated_user,
       authenticated_roles, assumed_role, serialization, '_dbos_internal_queue',
       workflow_uuid, attributes, application_name, %(now)s, %(now)s, 0, 0
FROM {dbos}workflow_status WHERE workflow_uuid = %(id)s;

-- fork_input --
-- The fork's input: the original's, where DBOS keeps it (workflow_input, else the status row).
INSERT INTO {dbos}workflow_input (workflow_uuid, inputs)
SELECT %(new)s, COALESCE(i.inputs, s.inputs)
FROM {dbos}workflow_status s
LEFT JOIN {dbos}workflow_input i ON i.workflow_uuid = s.workflow_uuid
WHERE s.workflow_uuid = %(id)s;

-- fork_steps --
-- The steps before the fork's start step, copied with their serialization, owned (as dbos-py
-- does) by the fork's application, the original's.
INSERT INTO {dbos}operation_outputs
  (workflow_uuid, function_id, function_name, output, error, child_workflow_id,
   started_at_epoch_ms, completed_at_epoch_ms, serialization, application_name)
SELECT %(new)s, o.function_id, o.function_name, o.output, o.error, o.child_workflow_id,
       o.started_at_epoch_ms, o.completed_at_epoch_ms, o.serialization, s.application_name
FROM {dbos}operation_outputs o
JOIN {dbos}workflow_status s ON s.workflow_uuid = o.workflow_uuid
WHERE o.workflow_uuid = %(id)s AND o.function_id < %(step)s;

-- fork_events_history --
-- Every event set by a copied step (dbos-py copies the history of steps before the start).
INSERT INTO {dbos}workflow_events_history
  (workflow_uuid, function_id, key, value, serialization)
SELECT %(new)s, function_id, key, value, serialization
FROM {dbos}workflow_events_history
WHERE workflow_uuid = %(id)s AND function_id < %(step)s;

-- fork_events --
-- Each key's latest value among those copied steps (not the original's final value: a step
-- after the start may have set it again, and the fork runs that step itself).
INSERT INTO {dbos}workflow_events (workflow_uuid, key, value, serialization)
SELECT %(new)s, key, value, serialization
FROM (SELECT key, value, serialization,
             row_number() OVER (PARTITION BY key ORDER BY function_id DESC) AS rn
      FROM {dbos}workflow_events_history
      WHERE workflow_uuid = %(id)s AND function_id < %(step)s) latest
WHERE rn = 1;

-- fork_streams --
-- Stream values written by the copied steps, at their offsets: the fork's own writes then
-- continue at the next offset, as the original's did.
INSERT INTO {dbos}streams (workflow_uuid, function_id, key, value, serialization, "offset")
SELECT %(new)s, function_id, key, value, serialization, "offset"
FROM {dbos}streams
WHERE workflow_uuid = %(id)s AND function_id < %(step)s;

-- fork_mark --
UPDATE {dbos}workflow_status SET was_forked_from = TRUE WHERE workflow_uuid = %(id)s;
