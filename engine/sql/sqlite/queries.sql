-- Named queries of the SQLite store. Each starts with a "-- name --" line; the Postgres file
-- defines the same names (a test checks). Parameters are named: :name.

-- insert_workflow --
-- Record a new workflow: PENDING under an executor (it runs there now), or ENQUEUED / DELAYED
-- on a queue. Returns nothing when the ID exists (the ID is an idempotency key); a
-- deduplication ID held by an unfinished workflow of the queue raises a unique violation.
INSERT INTO workflow_status (workflow_uuid, status, name, inputs, executor_id,
                             application_version, application_id, created_at, updated_at,
                             started_at_epoch_ms, parent_workflow_id, forked_from, queue_name,
                             workflow_timeout_ms, workflow_deadline_epoch_ms, priority,
                             deduplication_id, delay_until_epoch_ms, traceparent, attributes, partition_key)
VALUES (:workflow_id, :status, :name, :inputs, :executor_id,
        :application_version, :application_id, :now, :now,
        :started_at, :parent_workflow_id, :forked_from, :queue_name,
        :timeout_ms, :deadline_ms, :priority, :deduplication_id,
        :delay_until, :traceparent, :attributes, :partition_key)
ON CONFLICT (workflow_uuid) DO NOTHING
RETURNING workflow_uuid;
-- get_workflow --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes, partition_key
FROM workflow_status
WHERE workflow_uuid = :workflow_id;

-- get_workflow_outcome --
-- What an awaiter polls: small, served by the primary key. executor_id: a waiting execution
-- learns from it that its workflow was handed to another executor.
SELECT status, output, error, recovery_attempts, executor_id
FROM workflow_status
WHERE workflow_uuid = :workflow_id;

-- record_step --
-- Store one step's outcome and report, in the same round trip, the workflow's status and its
-- owner (executor_id): a cancel, or a takeover by another executor (this one was declared
-- dead), shows up at the next step boundary at no extra cost. Returns nothing when another
-- execution recorded this step first: the caller then adopts the recorded outcome.
INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output, error,
                               child_workflow_id, started_at_epoch_ms, completed_at_epoch_ms)
VALUES (:workflow_id, :step_id, :name, :output, :error, :child_workflow_id,
        :started, :completed)
ON CONFLICT (workflow_uuid, function_id) DO NOTHING
RETURNING function_id,
          (SELECT status FROM workflow_status WHERE workflow_uuid = :workflow_id) AS status,
          (SELECT executor_id FROM workflow_status WHERE workflow_uuid = :workflow_id) AS owner;

-- get_step --
-- owner: whoever executes the workflow now; an execution that lost a race for this step
-- adopts the record only if it still owns the workflow.
SELECT function_id, function_name, output, error, child_workflow_id, started_at_epoch_ms,
       completed_at_epoch_ms,
       (SELECT executor_id FROM workflow_status WHERE workflow_uuid = :workflow_id) AS owner
FROM operation_outputs
WHERE workflow_uuid = :workflow_id AND function_id = :step_id;

-- list_steps --
SELECT function_id, function_name, output, error, child_workflow_id, started_at_epoch_ms,
       completed_at_epoch_ms
FROM operation_outputs
WHERE workflow_uuid = :workflow_id
ORDER BY function_id;

-- finish_workflow --
-- The final write succeeds only while the row is PENDING (a cancel that landed after the last
-- step still wins) and still owned by the writer (an executor whose workflow was handed to
-- another one must not finish it).
-- after_step: written with the workflow's last step, right after its record_step in the same
-- transaction; only if that inserted the step (changes(): the rows the statement before this
-- one on the connection wrote), not when another execution had recorded it.
UPDATE workflow_status
SET status = :status, output = :output, error = :error, updated_at = :now,
    completed_at = :now, waiting = NULL
WHERE workflow_uuid = :workflow_id AND status = 'PENDING'
  AND executor_id = :executor_id
  AND (:after_step IS NULL OR changes() > 0)
RETURNING workflow_uuid, recovery_attempts;

-- recoverable_workflows --
SELECT workflow_uuid
FROM workflow_status
WHERE status = 'PENDING' AND executor_id = :executor_id
  AND application_version = :application_version
ORDER BY created_at;

-- claim_recovery --
-- Count one more recovery; guarded by status and executor: a workflow that finished or went to
-- another executor meanwhile is not claimed (two claims here are kept apart by Runs.claiming).
UPDATE workflow_status
SET recovery_attempts = recovery_attempts + 1, updated_at = :now
WHERE workflow_uuid = :workflow_id AND status = 'PENDING' AND executor_id = :executor_id
RETURNING workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
          created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
          workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
          forked_from;

-- set_status_if_pending --
UPDATE workflow_status
SET status = :status, error = :error, updated_at = :now, completed_at = :now
WHERE workflow_uuid = :workflow_id AND status = 'PENDING'
RETURNING workflow_uuid;

-- list_workflows_newest --
-- Every filter is optional (NULL = any); the order matches the (created_at, workflow_uuid) index.
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes, partition_key
FROM workflow_status
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:name IS NULL OR name = :name)
  AND (:id_prefix IS NULL OR substr(workflow_uuid, 1, length(:id_prefix)) = :id_prefix)
  AND (:queue_name IS NULL OR queue_name = :queue_name)
  AND (:application_version IS NULL OR application_version = :application_version)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
ORDER BY created_at DESC, workflow_uuid DESC
LIMIT :limit OFFSET :offset;

-- list_workflows_oldest --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes, partition_key
FROM workflow_status
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:name IS NULL OR name = :name)
  AND (:id_prefix IS NULL OR substr(workflow_uuid, 1, length(:id_prefix)) = :id_prefix)
  AND (:queue_name IS NULL OR queue_name = :queue_name)
  AND (:application_version IS NULL OR application_version = :application_version)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
ORDER BY created_at, workflow_uuid
LIMIT :limit OFFSET :offset;

-- cancel_workflow --
-- Only unfinished workflows; the running execution sees it at its next step boundary.
UPDATE workflow_status
SET status = 'CANCELLED', updated_at = :now, completed_at = :now
WHERE workflow_uuid = :workflow_id AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')
RETURNING workflow_uuid;

-- cancel_past_deadline --
UPDATE workflow_status
SET status = 'CANCELLED', error = :error, updated_at = :now, completed_at = :now
WHERE workflow_uuid = :workflow_id AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')
  AND workflow_deadline_epoch_ms IS NOT NULL AND workflow_deadline_epoch_ms <= :now
RETURNING workflow_uuid;

-- resume_workflow --
-- Back to work from the last completed step: PENDING here (started_at given: the timeout
-- counts afresh from now), or ENQUEUED for any worker of its version (started_at NULL).
UPDATE workflow_status
SET status = :status, executor_id = :executor_id,
    queue_name = COALESCE(:queue_name, queue_name), recovery_attempts = 0, output = NULL,
    error = NULL, completed_at = NULL, updated_at = :now,
    started_at_epoch_ms = :started_at,
    workflow_deadline_epoch_ms = :started_at + workflow_timeout_ms
WHERE workflow_uuid = :workflow_id
  AND status IN ('CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED', 'ENQUEUED')
RETURNING workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
          created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
          workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
          forked_from;

-- copy_steps --
-- A fork starts with the steps before start_step of the original, not re-run.
INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output, error,
                               child_workflow_id, started_at_epoch_ms, completed_at_epoch_ms)
SELECT :new_workflow_id, function_id, function_name, output, error, child_workflow_id,
       started_at_epoch_ms, completed_at_epoch_ms
FROM operation_outputs
WHERE workflow_uuid = :workflow_id AND function_id < :start_step;

-- send_message --
-- Idempotent by message_uuid (a workflow's send uses one derived from its step); refused
-- (no row) when the destination does not exist.
INSERT INTO notifications (destination_uuid, topic, message, created_at_epoch_ms, message_uuid,
                           seq)
SELECT :destination_id, :topic, :message, :now, :message_id,
       (SELECT COALESCE(MAX(seq), 0) + 1 FROM notifications)
WHERE EXISTS (SELECT 1 FROM workflow_status WHERE workflow_uuid = :destination_id)
ON CONFLICT (message_uuid) DO NOTHING
RETURNING message_uuid;

-- oldest_message --
SELECT message_uuid, message
FROM notifications
WHERE destination_uuid = :workflow_id AND topic IS :topic
ORDER BY seq
LIMIT 1;

-- delete_message --
-- Committed together with the recv step that recorded the message; deletes only if that step
-- holds this very message (a duplicate execution that lost the race deletes nothing).
DELETE FROM notifications
WHERE message_uuid = :message_id
  AND EXISTS (SELECT 1 FROM operation_outputs
              WHERE workflow_uuid = :workflow_id AND function_id = :step_id
                AND output = :output);

-- set_event --
INSERT INTO workflow_events (workflow_uuid, key, value)
VALUES (:workflow_id, :key, :value)
ON CONFLICT (workflow_uuid, key) DO UPDATE SET value = excluded.value;

-- get_event --
SELECT value FROM workflow_events WHERE workflow_uuid = :workflow_id AND key = :key;

-- heartbeat --
-- Heartbeat times come from the database's clock, never the worker's: a worker whose clock
-- runs ahead must not make the live ones look dead (nor a slow clock keep a dead one alive).
-- SQLite's clock is the machine's, which all the processes sharing the file share.
INSERT INTO executors (executor_id, application_version, hostname, pid, queues, schedules,
                       started_at, last_heartbeat)
VALUES (:executor_id, :application_version, :hostname, :pid, :queues,
        :schedules, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER),
        CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
ON CONFLICT (executor_id) DO UPDATE
SET last_heartbeat = excluded.last_heartbeat, application_version = excluded.application_version,
    hostname = excluded.hostname, pid = excluded.pid, queues = excluded.queues,
    schedules = excluded.schedules;

-- remove_executor --
DELETE FROM executors WHERE executor_id = :executor_id;

-- dead_executors --
SELECT executor_id FROM executors
WHERE last_heartbeat < CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) - :expiry_ms
  AND executor_id <> :executor_id;

-- requeue_dead_executor --
-- Hand a dead executor's unfinished workflows to any live one (as a recovery). Guarded twice:
-- by its ID (a duplicate sweep finds nothing) and by its heartbeat still being expired (an
-- executor that came back keeps its work).
UPDATE workflow_status
SET status = 'ENQUEUED', queue_name = COALESCE(queue_name, :internal_queue),
    executor_id = NULL, recovery_attempts = recovery_attempts + 1, updated_at = :now
WHERE status = 'PENDING' AND executor_id = :dead_executor_id
  AND EXISTS (SELECT 1 FROM executors
              WHERE executor_id = :dead_executor_id
                AND last_heartbeat < CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
                                     - :expiry_ms)
RETURNING workflow_uuid;

-- forget_dead_executor --
DELETE FROM executors
WHERE executor_id = :dead_executor_id
  AND last_heartbeat < CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) - :expiry_ms;

-- list_executors --
SELECT executor_id, application_version, hostname, pid, queues, schedules, started_at,
       last_heartbeat
FROM executors
ORDER BY executor_id;

-- promote_delayed --
-- Their queues: the worker loop claims from them now.
UPDATE workflow_status SET status = 'ENQUEUED', updated_at = :now
WHERE status = 'DELAYED' AND delay_until_epoch_ms <= :now
RETURNING queue_name;

-- queue_running --
SELECT count(*) AS running FROM workflow_status
WHERE queue_name = :queue_name AND status = 'PENDING';

-- queue_started_since --
SELECT count(*) AS started FROM workflow_status
WHERE queue_name = :queue_name AND started_at_epoch_ms >= :since;

-- try_lock_queue --
-- SQLite: the dequeue transaction holds the database's one write lock (BEGIN IMMEDIATE), so
-- the budget is already counted consistently.
SELECT 1 AS locked WHERE :lock_name IS NOT NULL;

-- claim_queued --
-- Take up to :limit waiting workflows of one queue (this version, or enqueued by name
-- without one), best priority first, then oldest; the timeout counts from here. "+status"
-- keeps the planner off the status index for the outer UPDATE: through it, every waiting row
-- of every queue was visited and tested against the picked list (2.3 ms with 10,000 waiting),
-- instead of looking the picked rows up by primary key (0.8 ms).
UPDATE workflow_status
SET status = 'PENDING', executor_id = :executor_id, started_at_epoch_ms = :now,
    updated_at = :now, application_version = :application_version,
    workflow_deadline_epoch_ms = COALESCE(:now + workflow_timeout_ms,
                                          workflow_deadline_epoch_ms)
WHERE workflow_uuid IN (
    SELECT workflow_uuid FROM workflow_status
    WHERE status = 'ENQUEUED' AND queue_name = :queue_name
      AND (application_version = :application_version OR application_version IS NULL)
    ORDER BY priority, created_at
    LIMIT :limit
) AND +status = 'ENQUEUED'
  -- Paused (by any process) since this worker read the queue's settings: start nothing.
  AND NOT EXISTS (SELECT 1 FROM queue_settings WHERE queue_name = :queue_name AND paused)
RETURNING workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
          created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
          workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
          forked_from,
          NOT EXISTS (SELECT 1 FROM operation_outputs AS o
                      WHERE o.workflow_uuid = workflow_status.workflow_uuid) AS fresh;

-- take_over --
-- A Celery worker takes a workflow the dispatcher claimed and handed to it; a duplicated or
-- late task finds it taken and runs nothing. Only a worker of the workflow's application
-- version takes it (a worker of another version leaves it untouched).
UPDATE workflow_status
SET executor_id = :executor_id, updated_at = :now
WHERE workflow_uuid = :workflow_id AND status = 'PENDING'
  AND executor_id = :dispatcher_id
  AND application_version = :application_version
RETURNING workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
          created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
          workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
          forked_from;

-- handed_over_unclaimed --
-- Workflows this dispatcher handed to Celery that no worker took in time (a lost task);
-- each is stamped, so it comes back at most once per interval.
UPDATE workflow_status SET updated_at = :now
WHERE status = 'PENDING' AND executor_id = :executor_id AND updated_at < :cutoff
RETURNING workflow_uuid;

-- == Celery fleet (0008_fleet) ==

-- describe_executor --
-- What an executor is (worker, dispatcher, celery) and its Celery node name, next to its
-- heartbeat (the heartbeat's upsert leaves these columns alone).
UPDATE executors SET role = :role, node_name = :node_name
WHERE executor_id = :executor_id
  AND (role IS NOT :role OR node_name IS NOT :node_name);


-- ============================================================================================
-- Step attempts, tracebacks and waits (issue #12; migration 0005)
-- ============================================================================================

-- record_attempt --
-- One failed attempt of a step. Numbered in the database (the next after those recorded), so
-- a re-execution after a crash continues the numbering instead of colliding with it.
INSERT INTO operation_attempts (workflow_uuid, function_id, attempt, error, traceback,
                                started_at_epoch_ms, completed_at_epoch_ms)
SELECT :workflow_id, :step_id, COALESCE(MAX(attempt), 0) + 1, :error, :traceback, :started,
       :completed
FROM operation_attempts
WHERE workflow_uuid = :workflow_id AND function_id = :step_id
ON CONFLICT DO NOTHING
RETURNING attempt;

-- list_attempts --
-- A workflow's failed attempts (of one step, or of all when step_id is NULL), in order.
SELECT function_id, attempt, error, traceback, started_at_epoch_ms, completed_at_epoch_ms
FROM operation_attempts
WHERE workflow_uuid = :workflow_id AND (:step_id IS NULL OR function_id = :step_id)
ORDER BY function_id, attempt;

-- copy_attempts --
-- A fork keeps the attempts of the steps it copies.
INSERT INTO operation_attempts (workflow_uuid, function_id, attempt, error, traceback,
                                started_at_epoch_ms, completed_at_epoch_ms)
SELECT :new_workflow_id, function_id, attempt, error, traceback, started_at_epoch_ms,
       completed_at_epoch_ms
FROM operation_attempts
WHERE workflow_uuid = :workflow_id AND function_id < :start_step;

-- set_workflow_traceback --
-- Written with the final ERROR status, in the same transaction (failures only).
UPDATE workflow_status
SET traceback = :traceback
WHERE workflow_uuid = :workflow_id AND status = 'ERROR' AND executor_id = :executor_id;

-- workflow_tracebacks --
SELECT workflow_uuid, traceback
FROM workflow_status
WHERE workflow_uuid IN (SELECT value FROM json_each(:workflow_ids)) AND traceback IS NOT NULL;

-- set_waiting --
-- What the workflow waits on now (JSON), or NULL; only while it runs here.
UPDATE workflow_status
SET waiting = :waiting
WHERE workflow_uuid = :workflow_id AND status = 'PENDING' AND executor_id = :executor_id;

-- get_waiting --
SELECT waiting FROM workflow_status WHERE workflow_uuid = :workflow_id;

-- Data lifecycle (delete, export, import, garbage collection; engine/lifecycle.py) ----------
-- Every statement that deletes a workflow's rows is listed in Store.delete_final; a table that
-- holds rows by workflow ID (streams, attempts, ...) must get its own delete there and here.

-- lifecycle_lock_final --
-- The final workflows among :ids, locked.
SELECT workflow_uuid FROM workflow_status
WHERE workflow_uuid IN (SELECT value FROM json_each(:ids)) AND status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED');

-- lifecycle_delete_steps --
DELETE FROM operation_outputs WHERE workflow_uuid IN (SELECT value FROM json_each(:ids));

-- lifecycle_delete_events --
DELETE FROM workflow_events WHERE workflow_uuid IN (SELECT value FROM json_each(:ids));

-- lifecycle_delete_messages --
DELETE FROM notifications WHERE destination_uuid IN (SELECT value FROM json_each(:ids));

-- lifecycle_delete_attempts --
DELETE FROM operation_attempts WHERE workflow_uuid IN (SELECT value FROM json_each(:ids));

-- lifecycle_delete_streams --
DELETE FROM streams WHERE workflow_uuid IN (SELECT value FROM json_each(:ids));

-- lifecycle_delete_workflows --
DELETE FROM workflow_status WHERE workflow_uuid IN (SELECT value FROM json_each(:ids)) AND status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
RETURNING workflow_uuid;

-- lifecycle_children --
SELECT workflow_uuid, status FROM workflow_status WHERE parent_workflow_id = :workflow_id;

-- lifecycle_gc_boundary --
-- The newest final workflow beyond the :keep_last newest (it and older ones may go).
SELECT completed_at, workflow_uuid FROM workflow_status
WHERE status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED') AND completed_at IS NOT NULL
  AND (:name IS NULL OR name = :name)
  AND name NOT IN (SELECT value FROM json_each(:exclude))
ORDER BY completed_at DESC, workflow_uuid DESC LIMIT 1 OFFSET :keep_last;

-- lifecycle_gc_candidates --
-- Oldest first: final, completed before :cutoff, at or past the keep_last boundary, and not
-- the child of an unfinished parent.
SELECT w.workflow_uuid FROM workflow_status AS w
WHERE w.status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED') AND w.completed_at < :cutoff
  AND (:name IS NULL OR w.name = :name)
  AND w.name NOT IN (SELECT value FROM json_each(:exclude))
  AND (w.completed_at < :b_at OR (w.completed_at = :b_at AND w.workflow_uuid <= :b_id))
  AND (w.parent_workflow_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM workflow_status AS p
      WHERE p.workflow_uuid = w.parent_workflow_id AND p.status NOT IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')))
ORDER BY w.completed_at, w.workflow_uuid LIMIT :limit;

-- export_workflow_row --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       application_id, created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, deduplication_id, priority,
       forked_from, parent_workflow_id, serialization, delay_until_epoch_ms, traceparent,
       traceback, waiting, attributes, partition_key
FROM workflow_status WHERE workflow_uuid = :workflow_id;

-- export_steps --
SELECT function_id, function_name, output, error, child_workflow_id, started_at_epoch_ms,
       completed_at_epoch_ms, serialization
FROM operation_outputs WHERE workflow_uuid = :workflow_id ORDER BY function_id;

-- export_events --
SELECT key, value, serialization FROM workflow_events WHERE workflow_uuid = :workflow_id
ORDER BY key;

-- export_messages --
SELECT topic, message, created_at_epoch_ms, message_uuid, serialization FROM notifications
WHERE destination_uuid = :workflow_id ORDER BY seq;

-- export_attempts --
SELECT function_id, attempt, error, traceback, started_at_epoch_ms, completed_at_epoch_ms
FROM operation_attempts WHERE workflow_uuid = :workflow_id ORDER BY function_id, attempt;

-- export_streams --
SELECT key, seq, value, closed, function_id FROM streams
WHERE workflow_uuid = :workflow_id ORDER BY key, seq;

-- import_workflow_row --
INSERT INTO workflow_status (workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       application_id, created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, deduplication_id, priority,
       forked_from, parent_workflow_id, serialization, delay_until_epoch_ms, traceparent,
       traceback, waiting, attributes, partition_key)
VALUES (:workflow_uuid, :status, :name, :inputs, :output, :error, :executor_id, :application_version, :application_id, :created_at, :updated_at, :recovery_attempts, :queue_name, :workflow_timeout_ms, :workflow_deadline_epoch_ms, :started_at_epoch_ms, :completed_at, :deduplication_id, :priority, :forked_from, :parent_workflow_id, :serialization, :delay_until_epoch_ms, :traceparent,
        :traceback, :waiting, :attributes, :partition_key)
ON CONFLICT (workflow_uuid) DO NOTHING RETURNING workflow_uuid;

-- import_step --
INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output, error,
                               child_workflow_id, started_at_epoch_ms, completed_at_epoch_ms,
                               serialization)
VALUES (:workflow_uuid, :function_id, :function_name, :output, :error,
        :child_workflow_id, :started_at_epoch_ms, :completed_at_epoch_ms,
        :serialization)
RETURNING 1;

-- import_event --
INSERT INTO workflow_events (workflow_uuid, key, value, serialization)
VALUES (:workflow_uuid, :key, :value, :serialization)
RETURNING 1;

-- import_message --
INSERT INTO notifications (destination_uuid, topic, message, created_at_epoch_ms, message_uuid,
                           serialization, seq)
VALUES (:destination_uuid, :topic, :message, :created_at_epoch_ms,
        :message_uuid, :serialization, (SELECT COALESCE(MAX(seq), 0) + 1 FROM notifications))
RETURNING 1;

-- import_attempt --
INSERT INTO operation_attempts (workflow_uuid, function_id, attempt, error, traceback,
                                started_at_epoch_ms, completed_at_epoch_ms)
VALUES (:workflow_uuid, :function_id, :attempt, :error, :traceback,
        :started_at_epoch_ms, :completed_at_epoch_ms)
RETURNING 1;

-- import_stream --
INSERT INTO streams (workflow_uuid, key, seq, value, closed, function_id)
VALUES (:workflow_uuid, :key, :seq, :value, :closed, :function_id)
RETURNING 1;

-- Tracing (engine/tracing.py) ---------------------------------------------------------------

-- get_traceparent --
SELECT traceparent FROM workflow_status WHERE workflow_uuid = :workflow_id;
-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): cascading cancel, deduplication policy "return-existing".

-- list_child_ids --
-- The children of a workflow, for cancel_workflow(cancel_children=True) (workflow_status_parent_idx).
SELECT workflow_uuid FROM workflow_status WHERE parent_workflow_id = :workflow_id;

-- deduplicated_holder --
-- The unfinished workflow of a queue that holds a deduplication ID (workflow_status_dedup_idx).
SELECT workflow_uuid FROM workflow_status
WHERE queue_name = :queue_name AND deduplication_id = :deduplication_id
  AND status IN ('ENQUEUED', 'PENDING', 'DELAYED');

-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): workflow attributes.

-- set_attributes --
-- Merge into the workflow's attributes (ctx.set_attributes); the trigger of 0007 keeps
-- workflow_attributes, the search index, in step.
UPDATE workflow_status SET attributes = json_patch(coalesce(attributes, '{}'), :attributes)
WHERE workflow_uuid = :workflow_id;

-- list_workflows_by_attributes_newest --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes, partition_key
FROM workflow_status
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:name IS NULL OR name = :name)
  AND (:id_prefix IS NULL OR substr(workflow_uuid, 1, length(:id_prefix)) = :id_prefix)
  AND (:queue_name IS NULL OR queue_name = :queue_name)
  AND (:application_version IS NULL OR application_version = :application_version)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND workflow_uuid IN (
      -- workflow_attributes (key, value, workflow_uuid): one index probe per given pair
      SELECT a.workflow_uuid FROM json_each(:attributes) AS p
      JOIN workflow_attributes AS a
        ON a.key = json_extract(p.value, '$[0]') AND a.value = json_extract(p.value, '$[1]')
      GROUP BY a.workflow_uuid HAVING count(*) = json_array_length(:attributes))
ORDER BY created_at DESC, workflow_uuid DESC
LIMIT :limit OFFSET :offset;

-- list_workflows_by_attributes_oldest --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes, partition_key
FROM workflow_status
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:name IS NULL OR name = :name)
  AND (:id_prefix IS NULL OR substr(workflow_uuid, 1, length(:id_prefix)) = :id_prefix)
  AND (:queue_name IS NULL OR queue_name = :queue_name)
  AND (:application_version IS NULL OR application_version = :application_version)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND workflow_uuid IN (
      -- workflow_attributes (key, value, workflow_uuid): one index probe per given pair
      SELECT a.workflow_uuid FROM json_each(:attributes) AS p
      JOIN workflow_attributes AS a
        ON a.key = json_extract(p.value, '$[0]') AND a.value = json_extract(p.value, '$[1]')
      GROUP BY a.workflow_uuid HAVING count(*) = json_array_length(:attributes))
ORDER BY created_at, workflow_uuid
LIMIT :limit OFFSET :offset;

-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): queue control.

-- set_queue_paused --
INSERT INTO queue_settings (queue_name, paused, updated_at) VALUES (:queue_name, :paused, :now)
ON CONFLICT (queue_name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at;

-- set_queue_limits --
INSERT INTO queue_settings (queue_name, limits, updated_at) VALUES (:queue_name, :limits, :now)
ON CONFLICT (queue_name) DO UPDATE
SET limits = json_patch(queue_settings.limits, excluded.limits), updated_at = excluded.updated_at;

-- queue_settings --
SELECT queue_name, paused, limits FROM queue_settings;

-- queue_counts --
-- Unfinished workflows per queue (workflow_status_status_idx); oldest: the longest waiting.
SELECT queue_name,
       sum(status = 'ENQUEUED') AS enqueued,
       sum(status = 'PENDING') AS running,
       sum(status = 'DELAYED') AS delayed,
       min(CASE WHEN status = 'ENQUEUED' THEN created_at END) AS oldest_enqueued_at
FROM workflow_status
WHERE status IN ('ENQUEUED', 'PENDING', 'DELAYED') AND queue_name IS NOT NULL
GROUP BY queue_name;

-- queue_seen --
-- Whether a queue is known to the database: controlled, or holding (or having held) work.
SELECT 1 AS seen WHERE EXISTS (SELECT 1 FROM queue_settings WHERE queue_name = :queue_name)
                    OR EXISTS (SELECT 1 FROM workflow_status WHERE queue_name = :queue_name);

-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): partitioned queues.

-- queue_partitions --
-- The partitions of a queue with waiting work: how many of each run, and when each last had a
-- workflow started (its turn: the least recently served goes first, on every worker alike).
-- The latest start counts finished workflows too (0011: one index probe per partition).
SELECT p.partition_key, p.running, p.waiting,
       coalesce((SELECT max(w.started_at_epoch_ms) FROM workflow_status AS w
                 WHERE w.queue_name = :queue_name AND w.partition_key = p.partition_key
                   AND w.partition_key IS NOT NULL), 0) AS last_started
FROM (SELECT partition_key,
             sum(status = 'PENDING') AS running,
             sum(status = 'ENQUEUED') AS waiting
      FROM workflow_status
      WHERE queue_name = :queue_name AND partition_key IS NOT NULL
        AND status IN ('ENQUEUED', 'PENDING')
      GROUP BY partition_key
      HAVING sum(status = 'ENQUEUED') > 0) AS p
ORDER BY last_started, p.partition_key;

-- claim_queued_partition --
-- claim_queued, within one partition. SQLite uses a partial index only when the query repeats
-- its WHERE terms word for word: "status IN (...)" (implied by status = 'ENQUEUED') lets the
-- pick read workflow_status_partition_idx in claim order and stop at :limit. Without it the
-- pick walked the queue's index past every waiting row of the other partitions (a small
-- partition behind 10,000 waiting rows of a big one: 5.9 ms per claim, now 0.35 ms), and the
-- outer UPDATE needs "+status" as in claim_queued.
UPDATE workflow_status
SET status = 'PENDING', executor_id = :executor_id, started_at_epoch_ms = :now,
    updated_at = :now, application_version = :application_version,
    workflow_deadline_epoch_ms = COALESCE(:now + workflow_timeout_ms,
                                          workflow_deadline_epoch_ms)
WHERE workflow_uuid IN (
    SELECT workflow_uuid FROM workflow_status
    WHERE status = 'ENQUEUED' AND queue_name = :queue_name AND partition_key = :partition_key
      AND status IN ('ENQUEUED', 'PENDING')
      AND (application_version = :application_version OR application_version IS NULL)
    ORDER BY priority, created_at
    LIMIT :limit
) AND +status = 'ENQUEUED'
  -- Paused (by any process) since this worker read the queue's settings: start nothing.
  AND NOT EXISTS (SELECT 1 FROM queue_settings WHERE queue_name = :queue_name AND paused)
RETURNING workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
          created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
          workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
          forked_from,
          NOT EXISTS (SELECT 1 FROM operation_outputs AS o
                      WHERE o.workflow_uuid = workflow_status.workflow_uuid) AS fresh;

-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): streams.

-- write_stream --
-- Append to a workflow's stream (only the workflow itself writes it, from its own thread, so
-- the next seq cannot race); written together with the step that did it.
INSERT INTO streams (workflow_uuid, key, seq, value, closed, function_id)
SELECT :workflow_id, :key, coalesce(max(seq) + 1, 0), :value, :closed, :step_id
FROM streams WHERE workflow_uuid = :workflow_id AND key = :key;

-- read_stream --
SELECT seq, value, closed FROM streams
WHERE workflow_uuid = :workflow_id AND key = :key AND seq >= :offset
ORDER BY seq
LIMIT 1000;

-- stream_closed --
SELECT 1 AS closed FROM streams
WHERE workflow_uuid = :workflow_id AND key = :key AND closed = 1;

-- list_streams --
-- A workflow's streams: how many values each holds, and whether it is closed.
SELECT key, sum(closed = 0) AS items, max(closed) AS closed
FROM streams WHERE workflow_uuid = :workflow_id
GROUP BY key ORDER BY key;

-- copy_streams --
-- A fork copies the stream items written by the steps it copies.
INSERT INTO streams (workflow_uuid, key, seq, value, closed, function_id)
SELECT :new_workflow_id, key, seq, value, closed, function_id FROM streams
WHERE workflow_uuid = :workflow_id AND function_id < :start_step
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Debouncing (engine/debounce.py, migration 0010): a burst is one DELAYED row per name and key.

-- debounce_start_due --
-- The key's unstarted burst whose start is already due (its period passed, the worker's
-- promotion has not run yet) is started now, so that a new burst can open beside it instead
-- of reviving one that already ended.
UPDATE workflow_status SET status = 'ENQUEUED', updated_at = :now
WHERE name = :name AND debounce_key = :debounce_key AND status = 'DELAYED'
  AND delay_until_epoch_ms <= :now
RETURNING workflow_uuid;

-- debounce_push --
-- One more debounce of the key's open burst: its input replaced, its start pushed to now +
-- period, never past the burst's first debounce (created_at) + max_wait. Nothing comes back
-- when no burst is open (none yet, or it started: SQLite's one writer orders this UPDATE and
-- promote_delayed), and the caller opens one.
UPDATE workflow_status
SET inputs = :inputs, updated_at = :now,
    delay_until_epoch_ms = CASE
        WHEN :max_wait_ms IS NULL THEN :now + :period_ms
        ELSE min(:now + :period_ms, created_at + :max_wait_ms) END
WHERE name = :name AND debounce_key = :debounce_key AND status = 'DELAYED'
  AND delay_until_epoch_ms > :now
RETURNING workflow_uuid;

-- insert_debounced --
-- insert_workflow for the row that opens a burst (DELAYED, with its debounce key). A burst of
-- the key opened meanwhile by another process raises a unique violation
-- (workflow_status_debounce_key_idx): the caller then joins that one.
INSERT INTO workflow_status (workflow_uuid, status, name, inputs, executor_id,
                             application_version, application_id, created_at, updated_at,
                             started_at_epoch_ms, parent_workflow_id, forked_from, queue_name,
                             workflow_timeout_ms, workflow_deadline_epoch_ms, priority,
                             deduplication_id, delay_until_epoch_ms, traceparent, attributes,
                             partition_key, debounce_key)
VALUES (:workflow_id, :status, :name, :inputs, :executor_id,
        :application_version, :application_id, :now, :now,
        :started_at, :parent_workflow_id, :forked_from, :queue_name,
        :timeout_ms, :deadline_ms, :priority, :deduplication_id,
        :delay_until, :traceparent, :attributes, :partition_key,
        :debounce_key)
ON CONFLICT (workflow_uuid) DO NOTHING
RETURNING workflow_uuid;


-- ---------------------------------------------------------------------------------------------
-- Managed schedules (0009_schedules).

-- upsert_schedule --
-- Create a schedule, or update it in place: an operator's pause holds, and the next tick is
-- recomputed only when the cron or the time zone changed (a redeploy does not shift it).
INSERT INTO schedules (name, workflow_name, cron, timezone, queue, paused, next_fire_at,
                       created_at, updated_at)
VALUES (:name, :workflow_name, :cron, :timezone, :queue, 0, :next_fire_at, :now, :now)
ON CONFLICT (name) DO UPDATE
SET workflow_name = excluded.workflow_name, cron = excluded.cron, timezone = excluded.timezone,
    queue = excluded.queue, updated_at = excluded.updated_at,
    next_fire_at = CASE WHEN schedules.cron = excluded.cron
                         AND schedules.timezone = excluded.timezone
                         AND schedules.next_fire_at IS NOT NULL
                        THEN schedules.next_fire_at ELSE excluded.next_fire_at END
RETURNING name;

-- get_schedule --
SELECT name, workflow_name, cron, timezone, queue, paused, next_fire_at, last_fire_at
FROM schedules WHERE name = :name;

-- list_schedules --
SELECT name, workflow_name, cron, timezone, queue, paused, next_fire_at, last_fire_at
FROM schedules ORDER BY name;

-- pause_schedule --
UPDATE schedules SET paused = 1, updated_at = :now WHERE name = :name RETURNING name;

-- resume_schedule --
-- A resumed schedule fires from its next tick after now: ticks passed while paused are skipped.
UPDATE schedules SET paused = 0, next_fire_at = :next_fire_at, updated_at = :now
WHERE name = :name RETURNING name;

-- delete_schedule --
DELETE FROM schedules WHERE name = :name RETURNING name;

-- advance_schedule --
-- After firing the tick ``expected``: only the worker that still sees it as the next tick
-- moves the schedule on (the others' fires were the same idempotent start).
UPDATE schedules
SET next_fire_at = :next_fire_at,
    -- the later of the two, either may be NULL (fired_at NULL: a tick skipped, none fired)
    last_fire_at = max(coalesce(last_fire_at, :fired_at), coalesce(:fired_at, last_fire_at))
WHERE name = :name AND next_fire_at = :expected AND paused = 0
RETURNING name;

-- schedule_fired --
-- A run triggered by hand: the schedule's last fire, if it is the latest.
UPDATE schedules SET last_fire_at = max(coalesce(last_fire_at, 0), :fired_at)
WHERE name = :name;

-- workflow_name_seen --
-- Whether the database knows a workflow by this name (a client cannot see the registries).
SELECT 1 AS seen
WHERE EXISTS (SELECT 1 FROM workflow_status WHERE name = :name)
   OR EXISTS (SELECT 1 FROM schedules WHERE workflow_name = :name);
