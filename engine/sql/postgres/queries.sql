-- Named queries of the Postgres store. Each starts with a "-- name --" line; the SQLite file
-- defines the same names (a test checks). Parameters are named: %(name)s.

-- insert_workflow --
-- Record a new workflow: PENDING under an executor (it runs there now), or ENQUEUED / DELAYED
-- on a queue. Returns nothing when the ID exists (the ID is an idempotency key); a
-- deduplication ID held by an unfinished workflow of the queue raises a unique violation.
INSERT INTO workflow_status (workflow_uuid, status, name, inputs, executor_id,
                             application_version, application_id, created_at, updated_at,
                             started_at_epoch_ms, parent_workflow_id, forked_from, queue_name,
                             workflow_timeout_ms, workflow_deadline_epoch_ms, priority,
                             deduplication_id, delay_until_epoch_ms, traceparent, attributes, partition_key)
VALUES (%(workflow_id)s, %(status)s, %(name)s, %(inputs)s, %(executor_id)s,
        %(application_version)s, %(application_id)s, %(now)s, %(now)s,
        %(started_at)s, %(parent_workflow_id)s, %(forked_from)s, %(queue_name)s,
        %(timeout_ms)s, %(deadline_ms)s, %(priority)s, %(deduplication_id)s,
        %(delay_until)s, %(traceparent)s, %(attributes)s::jsonb, %(partition_key)s)
ON CONFLICT (workflow_uuid) DO NOTHING
RETURNING workflow_uuid;
-- get_workflow --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes::text AS attributes, partition_key
FROM workflow_status
WHERE workflow_uuid = %(workflow_id)s;

-- get_workflow_outcome --
-- What an awaiter polls: small, served by the primary key. executor_id: a waiting execution
-- learns from it that its workflow was handed to another executor.
SELECT status, output, error, recovery_attempts, executor_id
FROM workflow_status
WHERE workflow_uuid = %(workflow_id)s;

-- record_step --
-- Store one step's outcome and report, in the same round trip, the workflow's status and its
-- owner (executor_id): a cancel, or a takeover by another executor (this one was declared
-- dead), shows up at the next step boundary at no extra cost. Returns nothing when another
-- execution recorded this step first: the caller then adopts the recorded outcome.
WITH recorded AS (
    INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output, error,
                                   child_workflow_id, started_at_epoch_ms, completed_at_epoch_ms)
    VALUES (%(workflow_id)s, %(step_id)s, %(name)s, %(output)s, %(error)s, %(child_workflow_id)s,
            %(started)s, %(completed)s)
    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
    RETURNING function_id
)
SELECT r.function_id, w.status, w.executor_id AS owner
FROM recorded AS r LEFT JOIN workflow_status AS w ON w.workflow_uuid = %(workflow_id)s;

-- get_step --
-- owner: whoever executes the workflow now; an execution that lost a race for this step
-- adopts the record only if it still owns the workflow.
SELECT function_id, function_name, output, error, child_workflow_id, started_at_epoch_ms,
       completed_at_epoch_ms,
       (SELECT executor_id FROM workflow_status WHERE workflow_uuid = %(workflow_id)s) AS owner
FROM operation_outputs
WHERE workflow_uuid = %(workflow_id)s AND function_id = %(step_id)s;

-- list_steps --
SELECT function_id, function_name, output, error, child_workflow_id, started_at_epoch_ms,
       completed_at_epoch_ms
FROM operation_outputs
WHERE workflow_uuid = %(workflow_id)s
ORDER BY function_id;

-- finish_workflow --
-- The final write succeeds only while the row is PENDING (a cancel that landed after the last
-- step still wins) and still owned by the writer (an executor whose workflow was handed to
-- another one must not finish it). after_step: written with the workflow's last step, after
-- its record_step in the same transaction; only if that inserted the step (its row is this
-- transaction's), not when another execution had recorded it.
UPDATE workflow_status
SET status = %(status)s, output = %(output)s, error = %(error)s, updated_at = %(now)s,
    completed_at = %(now)s, waiting = NULL
WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING'
  AND executor_id = %(executor_id)s
  AND (%(after_step)s::int IS NULL OR EXISTS (
      SELECT 1 FROM operation_outputs AS o
      WHERE o.workflow_uuid = %(workflow_id)s AND o.function_id = %(after_step)s::int
        AND o.xmin = pg_current_xact_id()::xid))
RETURNING workflow_uuid, recovery_attempts;

-- recoverable_workflows --
SELECT workflow_uuid
FROM workflow_status
WHERE status = 'PENDING' AND executor_id = %(executor_id)s
  AND application_version = %(application_version)s
ORDER BY created_at;

-- claim_recovery --
-- Count one more recovery; guarded by status and executor: a workflow that finished or went to
-- another executor meanwhile is not claimed (two claims here are kept apart by Runs.claiming).
UPDATE workflow_status
SET recovery_attempts = recovery_attempts + 1, updated_at = %(now)s
WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING' AND executor_id = %(executor_id)s
RETURNING workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
          created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
          workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
          forked_from;

-- set_status_if_pending --
UPDATE workflow_status
SET status = %(status)s, error = %(error)s, updated_at = %(now)s, completed_at = %(now)s
WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING'
RETURNING workflow_uuid;

-- list_workflows_newest --
-- Every filter is optional (NULL = any); the order matches the (created_at, workflow_uuid) index.
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes::text AS attributes, partition_key
FROM workflow_status
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(name)s::text IS NULL OR name = %(name)s::text)
  AND (%(id_prefix)s::text IS NULL OR starts_with(workflow_uuid, %(id_prefix)s::text))
  AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s::text)
  AND (%(application_version)s::text IS NULL OR application_version = %(application_version)s::text)
  AND (%(created_after)s::bigint IS NULL OR created_at >= %(created_after)s::bigint)
  AND (%(created_before)s::bigint IS NULL OR created_at < %(created_before)s::bigint)
ORDER BY created_at DESC, workflow_uuid DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- list_workflows_oldest --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes::text AS attributes, partition_key
FROM workflow_status
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(name)s::text IS NULL OR name = %(name)s::text)
  AND (%(id_prefix)s::text IS NULL OR starts_with(workflow_uuid, %(id_prefix)s::text))
  AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s::text)
  AND (%(application_version)s::text IS NULL OR application_version = %(application_version)s::text)
  AND (%(created_after)s::bigint IS NULL OR created_at >= %(created_after)s::bigint)
  AND (%(created_before)s::bigint IS NULL OR created_at < %(created_before)s::bigint)
ORDER BY created_at, workflow_uuid
LIMIT %(limit)s OFFSET %(offset)s;


-- cancel_workflow --
-- Only unfinished workflows; the running execution sees it at its next step boundary.
UPDATE workflow_status
SET status = 'CANCELLED', updated_at = %(now)s, completed_at = %(now)s
WHERE workflow_uuid = %(workflow_id)s AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')
RETURNING workflow_uuid;

-- cancel_past_deadline --
UPDATE workflow_status
SET status = 'CANCELLED', error = %(error)s, updated_at = %(now)s, completed_at = %(now)s
WHERE workflow_uuid = %(workflow_id)s AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')
  AND workflow_deadline_epoch_ms IS NOT NULL AND workflow_deadline_epoch_ms <= %(now)s
RETURNING workflow_uuid;

-- resume_workflow --
-- Back to work from the last completed step: PENDING here (started_at given: the timeout
-- counts afresh from now), or ENQUEUED for any worker of its version (started_at NULL).
UPDATE workflow_status
SET status = %(status)s, executor_id = %(executor_id)s,
    queue_name = COALESCE(%(queue_name)s, queue_name), recovery_attempts = 0, output = NULL,
    error = NULL, completed_at = NULL, updated_at = %(now)s,
    started_at_epoch_ms = %(started_at)s::bigint,
    workflow_deadline_epoch_ms = %(started_at)s::bigint + workflow_timeout_ms
WHERE workflow_uuid = %(workflow_id)s
  AND status IN ('CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED', 'ENQUEUED')
RETURNING workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
          created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
          workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
          forked_from;

-- copy_steps --
-- A fork starts with the steps before start_step of the original, not re-run.
INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output, error,
                               child_workflow_id, started_at_epoch_ms, completed_at_epoch_ms)
SELECT %(new_workflow_id)s, function_id, function_name, output, error, child_workflow_id,
       started_at_epoch_ms, completed_at_epoch_ms
FROM operation_outputs
WHERE workflow_uuid = %(workflow_id)s AND function_id < %(start_step)s;

-- send_message --
-- Idempotent by message_uuid (a workflow's send uses one derived from its step); refused
-- (no row) when the destination does not exist.
INSERT INTO notifications (destination_uuid, topic, message, created_at_epoch_ms, message_uuid)
SELECT %(destination_id)s, %(topic)s, %(message)s, %(now)s, %(message_id)s
WHERE EXISTS (SELECT 1 FROM workflow_status WHERE workflow_uuid = %(destination_id)s)
ON CONFLICT (message_uuid) DO NOTHING
RETURNING message_uuid;

-- oldest_message --
SELECT message_uuid, message
FROM notifications
WHERE destination_uuid = %(workflow_id)s AND topic IS NOT DISTINCT FROM %(topic)s
ORDER BY seq
LIMIT 1;

-- delete_message --
-- Committed together with the recv step that recorded the message; deletes only if that step
-- holds this very message (a duplicate execution that lost the race deletes nothing).
DELETE FROM notifications
WHERE message_uuid = %(message_id)s
  AND EXISTS (SELECT 1 FROM operation_outputs
              WHERE workflow_uuid = %(workflow_id)s AND function_id = %(step_id)s
                AND output = %(output)s);

-- set_event --
INSERT INTO workflow_events (workflow_uuid, key, value)
VALUES (%(workflow_id)s, %(key)s, %(value)s)
ON CONFLICT (workflow_uuid, key) DO UPDATE SET value = EXCLUDED.value;

-- get_event --
SELECT value FROM workflow_events WHERE workflow_uuid = %(workflow_id)s AND key = %(key)s;

-- heartbeat --
-- Heartbeat times come from the database's clock, never the worker's: a worker whose clock
-- runs ahead must not make the live ones look dead (nor a slow clock keep a dead one alive).
INSERT INTO executors (executor_id, application_version, hostname, pid, queues, schedules,
                       started_at, last_heartbeat)
VALUES (%(executor_id)s, %(application_version)s, %(hostname)s, %(pid)s, %(queues)s,
        %(schedules)s, (extract(epoch FROM now()) * 1000)::bigint,
        (extract(epoch FROM now()) * 1000)::bigint)
ON CONFLICT (executor_id) DO UPDATE
SET last_heartbeat = EXCLUDED.last_heartbeat, application_version = EXCLUDED.application_version,
    hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, queues = EXCLUDED.queues,
    schedules = EXCLUDED.schedules;

-- remove_executor --
DELETE FROM executors WHERE executor_id = %(executor_id)s;

-- dead_executors --
SELECT executor_id FROM executors
WHERE last_heartbeat < (extract(epoch FROM now()) * 1000)::bigint - %(expiry_ms)s
  AND executor_id <> %(executor_id)s;

-- requeue_dead_executor --
-- Hand a dead executor's unfinished workflows to any live one (as a recovery). Guarded twice:
-- by its ID (a duplicate sweep finds nothing) and by its heartbeat still being expired (an
-- executor that came back keeps its work).
UPDATE workflow_status
SET status = 'ENQUEUED', queue_name = COALESCE(queue_name, %(internal_queue)s),
    executor_id = NULL, recovery_attempts = recovery_attempts + 1, updated_at = %(now)s
WHERE status = 'PENDING' AND executor_id = %(dead_executor_id)s
  AND EXISTS (SELECT 1 FROM executors
              WHERE executor_id = %(dead_executor_id)s
                AND last_heartbeat < (extract(epoch FROM now()) * 1000)::bigint
                                     - %(expiry_ms)s)
RETURNING workflow_uuid;

-- forget_dead_executor --
DELETE FROM executors
WHERE executor_id = %(dead_executor_id)s
  AND last_heartbeat < (extract(epoch FROM now()) * 1000)::bigint - %(expiry_ms)s;

-- list_executors --
SELECT executor_id, application_version, hostname, pid, queues, schedules, started_at,
       last_heartbeat
FROM executors
ORDER BY executor_id;

-- promote_delayed --
-- Their queues: the worker loop claims from them now.
UPDATE workflow_status SET status = 'ENQUEUED', updated_at = %(now)s
WHERE status = 'DELAYED' AND delay_until_epoch_ms <= %(now)s
RETURNING queue_name;

-- queue_running --
SELECT count(*) AS running FROM workflow_status
WHERE queue_name = %(queue_name)s AND status = 'PENDING';

-- queue_started_since --
SELECT count(*) AS started FROM workflow_status
WHERE queue_name = %(queue_name)s AND started_at_epoch_ms >= %(since)s;

-- try_lock_queue --
-- One dequeuer per queue at a time, so the global budget is counted consistently; the others
-- skip this round instead of waiting (NOWAIT semantics). Released at commit.
SELECT pg_try_advisory_xact_lock(hashtextextended(%(lock_name)s, 0)) AS locked;

-- claim_queued --
-- Take up to %(limit)s waiting workflows of one queue (this version, or enqueued by name
-- without one), best priority first, then oldest; the timeout counts from here. The pick is
-- a MATERIALIZED CTE: as a plain IN (subquery) Postgres may re-run it per row, and with
-- SKIP LOCKED each run picks other rows, so far more than %(limit)s were claimed. "fresh":
-- no step recorded yet, so the executor need not read any back.
WITH picked AS MATERIALIZED (
    SELECT workflow_uuid FROM workflow_status
    WHERE status = 'ENQUEUED' AND queue_name = %(queue_name)s
      AND (application_version = %(application_version)s OR application_version IS NULL)
      -- Paused (by any process) since this worker read the queue's settings: start nothing.
      AND NOT EXISTS (SELECT 1 FROM queue_settings AS qs
                      WHERE qs.queue_name = %(queue_name)s AND qs.paused)
    ORDER BY priority, created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE workflow_status AS w
SET status = 'PENDING', executor_id = %(executor_id)s, started_at_epoch_ms = %(now)s,
    updated_at = %(now)s, application_version = %(application_version)s,
    workflow_deadline_epoch_ms = COALESCE(%(now)s + w.workflow_timeout_ms,
                                          w.workflow_deadline_epoch_ms)
FROM picked
WHERE w.workflow_uuid = picked.workflow_uuid AND w.status = 'ENQUEUED'
RETURNING w.workflow_uuid, w.status, w.name, w.inputs, w.output, w.error, w.executor_id,
          w.application_version, w.created_at, w.updated_at, w.recovery_attempts,
          w.queue_name, w.workflow_timeout_ms, w.workflow_deadline_epoch_ms,
          w.started_at_epoch_ms, w.completed_at, w.parent_workflow_id, w.forked_from,
          NOT EXISTS (SELECT 1 FROM operation_outputs AS o
                      WHERE o.workflow_uuid = w.workflow_uuid) AS fresh;

-- take_over --
-- A Celery worker takes a workflow the dispatcher claimed and handed to it; a duplicated or
-- late task finds it taken and runs nothing. Only a worker of the workflow's application
-- version takes it (a worker of another version leaves it untouched).
UPDATE workflow_status
SET executor_id = %(executor_id)s, updated_at = %(now)s
WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING'
  AND executor_id = %(dispatcher_id)s
  AND application_version = %(application_version)s
RETURNING workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
          created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
          workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
          forked_from;

-- handed_over_unclaimed --
-- Workflows this dispatcher handed to Celery that no worker took in time (a lost task);
-- each is stamped, so it comes back at most once per interval.
UPDATE workflow_status SET updated_at = %(now)s
WHERE status = 'PENDING' AND executor_id = %(executor_id)s AND updated_at < %(cutoff)s
RETURNING workflow_uuid;

-- write_batch --
-- Postgres only: the group committer's merged write. All the workflow inserts (started and
-- enqueued), step records and final updates of one batch in ONE statement (one round trip,
-- one commit) instead of one statement each. Each kind arrives as one JSON array of the
-- parameters its own query takes (insert_workflow, record_step, finish_workflow), one object
-- per write; every write finds its outcome by its key in the result. All parts see the
-- snapshot from before the statement, so a step reports the status from before this batch's
-- final updates (a workflow's last step is written with its final update: it reports PENDING).
-- Like record_step and finish_workflow alone: steps report the owner, finishes require it, and
-- a finish with after_step only goes with that step inserted here.
WITH new_workflows AS (
    INSERT INTO workflow_status (workflow_uuid, status, name, inputs, executor_id,
                                 application_version, application_id, created_at, updated_at,
                                 started_at_epoch_ms, parent_workflow_id, forked_from,
                                 queue_name, workflow_timeout_ms, workflow_deadline_epoch_ms,
                                 priority, deduplication_id, delay_until_epoch_ms, traceparent,
                                 attributes, partition_key)
    SELECT workflow_id, status, name, inputs, executor_id, application_version, application_id,
           now, now, started_at, parent_workflow_id, forked_from, queue_name, timeout_ms,
           deadline_ms, priority, deduplication_id, delay_until, traceparent, attributes::jsonb,
           partition_key
    FROM json_to_recordset(%(insert_workflow)s::json)
         AS v(workflow_id text, status text, name text, inputs text, executor_id text,
              application_version text, application_id text, now bigint, started_at bigint,
              parent_workflow_id text, forked_from text, queue_name text, timeout_ms bigint,
              deadline_ms bigint, priority int, deduplication_id text, delay_until bigint,
              traceparent text, attributes text, partition_key text)
    -- A held deduplication ID fails the whole statement; the group committer then runs each
    -- write alone, so the error reaches the one write that caused it.
    ON CONFLICT (workflow_uuid) DO NOTHING
    RETURNING workflow_uuid, name
), new_steps AS (
    INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output, error,
                                   child_workflow_id, started_at_epoch_ms,
                                   completed_at_epoch_ms)
    SELECT workflow_id, step_id, name, output, error, child_workflow_id, started, completed
    FROM json_to_recordset(%(record_step)s::json)
         AS v(workflow_id text, step_id int, name text, output text, error text,
              child_workflow_id text, started bigint, completed bigint)
    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
    RETURNING workflow_uuid, function_id
), consumed AS (
    -- A recv's message goes with its step, and only when this statement recorded that step
    -- (a duplicate execution whose step lost the race deletes nothing).
    DELETE FROM notifications AS n
    USING new_steps AS s,
          json_to_recordset(%(delete_message)s::json)
              AS v(message_id text, workflow_id text, step_id int, output text)
    WHERE n.message_uuid = v.message_id
      AND s.workflow_uuid = v.workflow_id AND s.function_id = v.step_id
    RETURNING n.message_uuid
), finished AS (
    UPDATE workflow_status AS w
    SET status = v.status, output = v.output, error = v.error, updated_at = v.now,
        completed_at = v.now, waiting = NULL
    FROM json_to_recordset(%(finish_workflow)s::json)
         AS v(workflow_id text, status text, output text, error text, now bigint,
              executor_id text, after_step int)
    WHERE w.workflow_uuid = v.workflow_id AND w.status = 'PENDING'
      AND w.executor_id = v.executor_id
      AND (v.after_step IS NULL OR EXISTS (
          SELECT 1 FROM new_steps AS s
          WHERE s.workflow_uuid = v.workflow_id AND s.function_id = v.after_step))
    RETURNING w.workflow_uuid, w.recovery_attempts
), sent AS (
    -- Like send_message: refused (no row) when the destination does not exist.
    INSERT INTO notifications (destination_uuid, topic, message, created_at_epoch_ms,
                               message_uuid)
    SELECT v.destination_id, v.topic, v.message, v.now, v.message_id
    FROM json_to_recordset(%(send_message)s::json)
         AS v(destination_id text, topic text, message text, now bigint, message_id text)
    WHERE EXISTS (SELECT 1 FROM workflow_status AS w WHERE w.workflow_uuid = v.destination_id)
    ON CONFLICT (message_uuid) DO NOTHING
    RETURNING message_uuid
), notified AS (
    -- Wake-ups for other processes, sent at commit (pg_notify is volatile: never inlined).
    SELECT pg_notify(v.channel, v.payload) AS done
    FROM json_to_recordset(%(notify)s::json) AS v(channel text, payload text)
), notified_count AS (
    SELECT count(*) AS n FROM notified
)
SELECT 'insert_workflow' AS kind, workflow_uuid AS workflow_id, name, NULL::int AS step_id,
       NULL::text AS status, NULL::text AS owner, NULL::int AS recovery_attempts,
       NULL::text AS message_id
FROM new_workflows
UNION ALL
SELECT 'record_step', s.workflow_uuid, NULL, s.function_id, w.status, w.executor_id, NULL, NULL
FROM new_steps AS s LEFT JOIN workflow_status AS w ON w.workflow_uuid = s.workflow_uuid
UNION ALL
SELECT 'finish_workflow', workflow_uuid, NULL, NULL, NULL, NULL, recovery_attempts, NULL
FROM finished
UNION ALL
SELECT 'send_message', NULL, NULL, NULL, NULL, NULL, NULL, message_uuid
FROM sent
UNION ALL
-- Never a row (a count is not negative), but the notifications are sent: it reads them all.
SELECT 'notify', NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM notified_count WHERE n < 0;
-- notify --
-- Postgres only: wake waiters in other processes (messages, events, cancels) at commit.
SELECT pg_notify(%(channel)s, %(payload)s);

-- ============================================================================================
-- Step attempts, tracebacks and waits (issue #12; migration 0005)
-- ============================================================================================

-- record_attempt --
-- One failed attempt of a step. Numbered in the database (the next after those recorded), so
-- a re-execution after a crash continues the numbering instead of colliding with it.
INSERT INTO operation_attempts (workflow_uuid, function_id, attempt, error, traceback,
                                started_at_epoch_ms, completed_at_epoch_ms)
SELECT %(workflow_id)s, %(step_id)s, COALESCE(MAX(attempt), 0) + 1, %(error)s,
       %(traceback)s, %(started)s::bigint, %(completed)s::bigint
FROM operation_attempts
WHERE workflow_uuid = %(workflow_id)s AND function_id = %(step_id)s
ON CONFLICT DO NOTHING
RETURNING attempt;

-- list_attempts --
-- A workflow's failed attempts (of one step, or of all when step_id is NULL), in order.
SELECT function_id, attempt, error, traceback, started_at_epoch_ms, completed_at_epoch_ms
FROM operation_attempts
WHERE workflow_uuid = %(workflow_id)s
  AND (%(step_id)s::int IS NULL OR function_id = %(step_id)s::int)
ORDER BY function_id, attempt;

-- copy_attempts --
-- A fork keeps the attempts of the steps it copies.
INSERT INTO operation_attempts (workflow_uuid, function_id, attempt, error, traceback,
                                started_at_epoch_ms, completed_at_epoch_ms)
SELECT %(new_workflow_id)s, function_id, attempt, error, traceback, started_at_epoch_ms,
       completed_at_epoch_ms
FROM operation_attempts
WHERE workflow_uuid = %(workflow_id)s AND function_id < %(start_step)s;

-- set_workflow_traceback --
-- Written with the final ERROR status, in the same transaction (failures only).
UPDATE workflow_status
SET traceback = %(traceback)s
WHERE workflow_uuid = %(workflow_id)s AND status = 'ERROR' AND executor_id = %(executor_id)s;

-- workflow_tracebacks --
SELECT workflow_uuid, traceback
FROM workflow_status
WHERE workflow_uuid = ANY(%(workflow_ids)s::text[]) AND traceback IS NOT NULL;

-- set_waiting --
-- What the workflow waits on now (JSON), or NULL; only while it runs here.
UPDATE workflow_status
SET waiting = %(waiting)s
WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING'
  AND executor_id = %(executor_id)s;

-- get_waiting --
SELECT waiting FROM workflow_status WHERE workflow_uuid = %(workflow_id)s;

-- Data lifecycle (delete, export, import, garbage collection; engine/lifecycle.py) ----------
-- Every statement that deletes a workflow's rows is listed in Store.delete_final; a table that
-- holds rows by workflow ID (streams, attempts, ...) must get its own delete there and here.

-- lifecycle_lock_final --
-- The final workflows among :ids, locked (FOR UPDATE: a resume waits for the delete).
SELECT workflow_uuid FROM workflow_status
WHERE workflow_uuid IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)) AND status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED') FOR UPDATE;

-- lifecycle_delete_steps --
WITH gone AS (DELETE FROM operation_outputs WHERE workflow_uuid IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb))
              RETURNING 1)
SELECT count(*) AS deleted FROM gone;

-- lifecycle_delete_events --
WITH gone AS (DELETE FROM workflow_events WHERE workflow_uuid IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb))
              RETURNING 1)
SELECT count(*) AS deleted FROM gone;

-- lifecycle_delete_messages --
WITH gone AS (DELETE FROM notifications WHERE destination_uuid IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb))
              RETURNING 1)
SELECT count(*) AS deleted FROM gone;

-- lifecycle_delete_attempts --
WITH gone AS (DELETE FROM operation_attempts WHERE workflow_uuid IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb))
              RETURNING 1)
SELECT count(*) AS deleted FROM gone;

-- lifecycle_delete_streams --
WITH gone AS (DELETE FROM streams WHERE workflow_uuid IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb))
              RETURNING 1)
SELECT count(*) AS deleted FROM gone;

-- lifecycle_delete_workflows --
DELETE FROM workflow_status WHERE workflow_uuid IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)) AND status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
RETURNING workflow_uuid;

-- lifecycle_children --
SELECT workflow_uuid, status FROM workflow_status WHERE parent_workflow_id = %(workflow_id)s;

-- lifecycle_gc_boundary --
-- The newest final workflow beyond the :keep_last newest (it and older ones may go).
SELECT completed_at, workflow_uuid FROM workflow_status
WHERE status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED') AND completed_at IS NOT NULL
  AND (%(name)s::text IS NULL OR name = %(name)s::text)
  AND name NOT IN (SELECT jsonb_array_elements_text(%(exclude)s::jsonb))
ORDER BY completed_at DESC, workflow_uuid DESC LIMIT 1 OFFSET %(keep_last)s;

-- lifecycle_gc_candidates --
-- Oldest first: final, completed before :cutoff, at or past the keep_last boundary, and not
-- the child of an unfinished parent.
SELECT w.workflow_uuid FROM workflow_status AS w
WHERE w.status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED') AND w.completed_at < %(cutoff)s
  AND (%(name)s::text IS NULL OR w.name = %(name)s::text)
  AND w.name NOT IN (SELECT jsonb_array_elements_text(%(exclude)s::jsonb))
  AND (w.completed_at < %(b_at)s OR (w.completed_at = %(b_at)s AND w.workflow_uuid <= %(b_id)s))
  AND (w.parent_workflow_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM workflow_status AS p
      WHERE p.workflow_uuid = w.parent_workflow_id AND p.status NOT IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')))
ORDER BY w.completed_at, w.workflow_uuid LIMIT %(limit)s;

-- export_workflow_row --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       application_id, created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, deduplication_id, priority,
       forked_from, parent_workflow_id, serialization, delay_until_epoch_ms, traceparent,
       traceback, waiting, attributes::text AS attributes, partition_key
FROM workflow_status WHERE workflow_uuid = %(workflow_id)s;

-- export_steps --
SELECT function_id, function_name, output, error, child_workflow_id, started_at_epoch_ms,
       completed_at_epoch_ms, serialization
FROM operation_outputs WHERE workflow_uuid = %(workflow_id)s ORDER BY function_id;

-- export_events --
SELECT key, value, serialization FROM workflow_events WHERE workflow_uuid = %(workflow_id)s
ORDER BY key;

-- export_messages --
SELECT topic, message, created_at_epoch_ms, message_uuid, serialization FROM notifications
WHERE destination_uuid = %(workflow_id)s ORDER BY seq;

-- export_attempts --
SELECT function_id, attempt, error, traceback, started_at_epoch_ms, completed_at_epoch_ms
FROM operation_attempts WHERE workflow_uuid = %(workflow_id)s ORDER BY function_id, attempt;

-- export_streams --
SELECT key, seq, value, closed, function_id FROM streams
WHERE workflow_uuid = %(workflow_id)s ORDER BY key, seq;

-- import_workflow_row --
INSERT INTO workflow_status (workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       application_id, created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, deduplication_id, priority,
       forked_from, parent_workflow_id, serialization, delay_until_epoch_ms, traceparent,
       traceback, waiting, attributes, partition_key)
VALUES (%(workflow_uuid)s, %(status)s, %(name)s, %(inputs)s, %(output)s, %(error)s, %(executor_id)s, %(application_version)s, %(application_id)s, %(created_at)s, %(updated_at)s, %(recovery_attempts)s, %(queue_name)s, %(workflow_timeout_ms)s, %(workflow_deadline_epoch_ms)s, %(started_at_epoch_ms)s, %(completed_at)s, %(deduplication_id)s, %(priority)s, %(forked_from)s, %(parent_workflow_id)s, %(serialization)s, %(delay_until_epoch_ms)s, %(traceparent)s,
        %(traceback)s, %(waiting)s, %(attributes)s::jsonb, %(partition_key)s)
ON CONFLICT (workflow_uuid) DO NOTHING RETURNING workflow_uuid;

-- import_step --
INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output, error,
                               child_workflow_id, started_at_epoch_ms, completed_at_epoch_ms,
                               serialization)
VALUES (%(workflow_uuid)s, %(function_id)s, %(function_name)s, %(output)s, %(error)s,
        %(child_workflow_id)s, %(started_at_epoch_ms)s, %(completed_at_epoch_ms)s,
        %(serialization)s)
RETURNING 1;

-- import_event --
INSERT INTO workflow_events (workflow_uuid, key, value, serialization)
VALUES (%(workflow_uuid)s, %(key)s, %(value)s, %(serialization)s)
RETURNING 1;

-- import_message --
INSERT INTO notifications (destination_uuid, topic, message, created_at_epoch_ms, message_uuid,
                           serialization)
VALUES (%(destination_uuid)s, %(topic)s, %(message)s, %(created_at_epoch_ms)s,
        %(message_uuid)s, %(serialization)s)
RETURNING 1;

-- import_attempt --
INSERT INTO operation_attempts (workflow_uuid, function_id, attempt, error, traceback,
                                started_at_epoch_ms, completed_at_epoch_ms)
VALUES (%(workflow_uuid)s, %(function_id)s, %(attempt)s, %(error)s, %(traceback)s,
        %(started_at_epoch_ms)s, %(completed_at_epoch_ms)s)
RETURNING 1;

-- import_stream --
INSERT INTO streams (workflow_uuid, key, seq, value, closed, function_id)
VALUES (%(workflow_uuid)s, %(key)s, %(seq)s, %(value)s, %(closed)s, %(function_id)s)
RETURNING 1;

-- Tracing (engine/tracing.py) ---------------------------------------------------------------

-- get_traceparent --
SELECT traceparent FROM workflow_status WHERE workflow_uuid = %(workflow_id)s;
-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): cascading cancel, deduplication policy "return-existing".

-- list_child_ids --
-- The children of a workflow, for cancel_workflow(cancel_children=True) (workflow_status_parent_idx).
SELECT workflow_uuid FROM workflow_status WHERE parent_workflow_id = %(workflow_id)s;

-- deduplicated_holder --
-- The unfinished workflow of a queue that holds a deduplication ID (workflow_status_dedup_idx).
SELECT workflow_uuid FROM workflow_status
WHERE queue_name = %(queue_name)s AND deduplication_id = %(deduplication_id)s
  AND status IN ('ENQUEUED', 'PENDING', 'DELAYED');

-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): workflow attributes.

-- set_attributes --
-- Merge into the workflow's attributes (ctx.set_attributes).
UPDATE workflow_status
SET attributes = coalesce(attributes, '{}'::jsonb) || %(attributes)s::jsonb
WHERE workflow_uuid = %(workflow_id)s;

-- list_workflows_by_attributes_newest --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes::text AS attributes, partition_key
FROM workflow_status
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(name)s::text IS NULL OR name = %(name)s::text)
  AND (%(id_prefix)s::text IS NULL OR starts_with(workflow_uuid, %(id_prefix)s::text))
  AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s::text)
  AND (%(application_version)s::text IS NULL OR application_version = %(application_version)s::text)
  AND (%(created_after)s::bigint IS NULL OR created_at >= %(created_after)s::bigint)
  AND (%(created_before)s::bigint IS NULL OR created_at < %(created_before)s::bigint)
  AND attributes @> %(attributes)s::jsonb  -- workflow_status_attributes_idx (GIN)
ORDER BY created_at DESC, workflow_uuid DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- list_workflows_by_attributes_oldest --
SELECT workflow_uuid, status, name, inputs, output, error, executor_id, application_version,
       created_at, updated_at, recovery_attempts, queue_name, workflow_timeout_ms,
       workflow_deadline_epoch_ms, started_at_epoch_ms, completed_at, parent_workflow_id,
       forked_from, attributes::text AS attributes, partition_key
FROM workflow_status
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(name)s::text IS NULL OR name = %(name)s::text)
  AND (%(id_prefix)s::text IS NULL OR starts_with(workflow_uuid, %(id_prefix)s::text))
  AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s::text)
  AND (%(application_version)s::text IS NULL OR application_version = %(application_version)s::text)
  AND (%(created_after)s::bigint IS NULL OR created_at >= %(created_after)s::bigint)
  AND (%(created_before)s::bigint IS NULL OR created_at < %(created_before)s::bigint)
  AND attributes @> %(attributes)s::jsonb  -- workflow_status_attributes_idx (GIN)
ORDER BY created_at, workflow_uuid
LIMIT %(limit)s OFFSET %(offset)s;

-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): queue control.

-- set_queue_paused --
INSERT INTO queue_settings (queue_name, paused, updated_at)
VALUES (%(queue_name)s, %(paused)s, %(now)s)
ON CONFLICT (queue_name) DO UPDATE SET paused = EXCLUDED.paused, updated_at = EXCLUDED.updated_at;

-- set_queue_limits --
INSERT INTO queue_settings (queue_name, limits, updated_at)
VALUES (%(queue_name)s, %(limits)s::jsonb, %(now)s)
ON CONFLICT (queue_name) DO UPDATE
SET limits = queue_settings.limits || EXCLUDED.limits, updated_at = EXCLUDED.updated_at;

-- queue_settings --
SELECT queue_name, paused, limits::text AS limits FROM queue_settings;

-- queue_counts --
-- Unfinished workflows per queue (workflow_status_status_idx); oldest: the longest waiting.
SELECT queue_name,
       count(*) FILTER (WHERE status = 'ENQUEUED') AS enqueued,
       count(*) FILTER (WHERE status = 'PENDING') AS running,
       count(*) FILTER (WHERE status = 'DELAYED') AS delayed,
       min(created_at) FILTER (WHERE status = 'ENQUEUED') AS oldest_enqueued_at
FROM workflow_status
WHERE status IN ('ENQUEUED', 'PENDING', 'DELAYED') AND queue_name IS NOT NULL
GROUP BY queue_name;

-- queue_seen --
-- Whether a queue is known to the database: controlled, or holding (or having held) work.
SELECT 1 AS seen
WHERE EXISTS (SELECT 1 FROM queue_settings WHERE queue_name = %(queue_name)s)
   OR EXISTS (SELECT 1 FROM workflow_status WHERE queue_name = %(queue_name)s);

-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): partitioned queues.

-- queue_partitions --
-- The partitions of a queue with waiting work: how many of each run, and when each last had a
-- workflow started (its turn: the least recently served goes first, on every worker alike).
-- The latest start counts finished workflows too (0011: one index probe per partition).
SELECT p.partition_key, p.running, p.waiting,
       coalesce((SELECT max(w.started_at_epoch_ms) FROM workflow_status AS w
                 WHERE w.queue_name = %(queue_name)s AND w.partition_key = p.partition_key
                   AND w.partition_key IS NOT NULL), 0) AS last_started
FROM (SELECT partition_key,
             count(*) FILTER (WHERE status = 'PENDING') AS running,
             count(*) FILTER (WHERE status = 'ENQUEUED') AS waiting
      FROM workflow_status
      WHERE queue_name = %(queue_name)s AND partition_key IS NOT NULL
        AND status IN ('ENQUEUED', 'PENDING')
      GROUP BY partition_key
      HAVING count(*) FILTER (WHERE status = 'ENQUEUED') > 0) AS p
ORDER BY last_started, p.partition_key;

-- claim_queued_partition --
-- claim_queued, within one partition.
WITH picked AS MATERIALIZED (
    SELECT workflow_uuid FROM workflow_status
    WHERE status = 'ENQUEUED' AND queue_name = %(queue_name)s
      AND partition_key = %(partition_key)s
      AND (application_version = %(application_version)s OR application_version IS NULL)
      -- Paused (by any process) since this worker read the queue's settings: start nothing.
      AND NOT EXISTS (SELECT 1 FROM queue_settings AS qs
                      WHERE qs.queue_name = %(queue_name)s AND qs.paused)
    ORDER BY priority, created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE workflow_status AS w
SET status = 'PENDING', executor_id = %(executor_id)s, started_at_epoch_ms = %(now)s,
    updated_at = %(now)s, application_version = %(application_version)s,
    workflow_deadline_epoch_ms = COALESCE(%(now)s + w.workflow_timeout_ms,
                                          w.workflow_deadline_epoch_ms)
FROM picked
WHERE w.workflow_uuid = picked.workflow_uuid AND w.status = 'ENQUEUED'
RETURNING w.workflow_uuid, w.status, w.name, w.inputs, w.output, w.error, w.executor_id,
          w.application_version, w.created_at, w.updated_at, w.recovery_attempts,
          w.queue_name, w.workflow_timeout_ms, w.workflow_deadline_epoch_ms,
          w.started_at_epoch_ms, w.completed_at, w.parent_workflow_id, w.forked_from,
          NOT EXISTS (SELECT 1 FROM operation_outputs AS o
                      WHERE o.workflow_uuid = w.workflow_uuid) AS fresh;

-- ---------------------------------------------------------------------------------------------
-- Parity (issue 15): streams.

-- write_stream --
-- Append to a workflow's stream (only the workflow itself writes it, from its own thread, so
-- the next seq cannot race); written together with the step that did it.
INSERT INTO streams (workflow_uuid, key, seq, value, closed, function_id)
SELECT %(workflow_id)s, %(key)s, coalesce(max(seq) + 1, 0), %(value)s, %(closed)s, %(step_id)s
FROM streams WHERE workflow_uuid = %(workflow_id)s AND key = %(key)s;

-- read_stream --
SELECT seq, value, closed FROM streams
WHERE workflow_uuid = %(workflow_id)s AND key = %(key)s AND seq >= %(offset)s
ORDER BY seq
LIMIT 1000;

-- stream_closed --
SELECT 1 AS closed FROM streams
WHERE workflow_uuid = %(workflow_id)s AND key = %(key)s AND closed = 1;

-- list_streams --
-- A workflow's streams: how many values each holds, and whether it is closed.
SELECT key, count(*) FILTER (WHERE closed = 0) AS items, max(closed) AS closed
FROM streams WHERE workflow_uuid = %(workflow_id)s
GROUP BY key ORDER BY key;

-- copy_streams --
-- A fork copies the stream items written by the steps it copies.
INSERT INTO streams (workflow_uuid, key, seq, value, closed, function_id)
SELECT %(new_workflow_id)s, key, seq, value, closed, function_id FROM streams
WHERE workflow_uuid = %(workflow_id)s AND function_id < %(start_step)s
ON CONFLICT DO NOTHING;

-- == Celery fleet (0008_fleet) ==

-- describe_executor --
-- What an executor is (worker, dispatcher, celery) and its Celery node name, next to its
-- heartbeat (the heartbeat's upsert leaves these columns alone).
UPDATE executors SET role = %(role)s, node_name = %(node_name)s
WHERE executor_id = %(executor_id)s
  AND (role IS DISTINCT FROM %(role)s OR node_name IS DISTINCT FROM %(node_name)s);


-- ---------------------------------------------------------------------------------------------
-- Debouncing (engine/debounce.py, migration 0010): a burst is one DELAYED row per name and key.

-- debounce_start_due --
-- The key's unstarted burst whose start is already due (its period passed, the worker's
-- promotion has not run yet) is started now, so that a new burst can open beside it instead
-- of reviving one that already ended.
UPDATE workflow_status SET status = 'ENQUEUED', updated_at = %(now)s
WHERE name = %(name)s AND debounce_key = %(debounce_key)s AND status = 'DELAYED'
  AND delay_until_epoch_ms <= %(now)s
RETURNING workflow_uuid;

-- debounce_push --
-- One more debounce of the key's open burst: its input replaced, its start pushed to now +
-- period, never past the burst's first debounce (created_at) + max_wait. Nothing comes back
-- when no burst is open (none yet, or it started: promote_delayed and this UPDATE lock the
-- row in turn, and the second re-checks status and start time), and the caller opens one.
UPDATE workflow_status
SET inputs = %(inputs)s, updated_at = %(now)s::bigint,
    delay_until_epoch_ms = CASE
        WHEN %(max_wait_ms)s::bigint IS NULL THEN %(now)s::bigint + %(period_ms)s::bigint
        ELSE LEAST(%(now)s::bigint + %(period_ms)s::bigint,
                   created_at + %(max_wait_ms)s::bigint) END
WHERE name = %(name)s AND debounce_key = %(debounce_key)s AND status = 'DELAYED'
  AND delay_until_epoch_ms > %(now)s::bigint
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
VALUES (%(workflow_id)s, %(status)s, %(name)s, %(inputs)s, %(executor_id)s,
        %(application_version)s, %(application_id)s, %(now)s, %(now)s,
        %(started_at)s, %(parent_workflow_id)s, %(forked_from)s, %(queue_name)s,
        %(timeout_ms)s, %(deadline_ms)s, %(priority)s, %(deduplication_id)s,
        %(delay_until)s, %(traceparent)s, %(attributes)s::jsonb, %(partition_key)s,
        %(debounce_key)s)
ON CONFLICT (workflow_uuid) DO NOTHING
RETURNING workflow_uuid;


-- ---------------------------------------------------------------------------------------------
-- Managed schedules (0009_schedules).

-- upsert_schedule --
-- Create a schedule, or update it in place: an operator's pause holds, and the next tick is
-- recomputed only when the cron or the time zone changed (a redeploy does not shift it).
INSERT INTO schedules (name, workflow_name, cron, timezone, queue, paused, next_fire_at,
                       created_at, updated_at)
VALUES (%(name)s, %(workflow_name)s, %(cron)s, %(timezone)s, %(queue)s, FALSE, %(next_fire_at)s,
        %(now)s, %(now)s)
ON CONFLICT (name) DO UPDATE
SET workflow_name = EXCLUDED.workflow_name, cron = EXCLUDED.cron, timezone = EXCLUDED.timezone,
    queue = EXCLUDED.queue, updated_at = EXCLUDED.updated_at,
    next_fire_at = CASE WHEN schedules.cron = EXCLUDED.cron
                         AND schedules.timezone = EXCLUDED.timezone
                         AND schedules.next_fire_at IS NOT NULL
                        THEN schedules.next_fire_at ELSE EXCLUDED.next_fire_at END
RETURNING name;

-- get_schedule --
SELECT name, workflow_name, cron, timezone, queue, paused, next_fire_at, last_fire_at
FROM schedules WHERE name = %(name)s;

-- list_schedules --
SELECT name, workflow_name, cron, timezone, queue, paused, next_fire_at, last_fire_at
FROM schedules ORDER BY name;

-- pause_schedule --
UPDATE schedules SET paused = TRUE, updated_at = %(now)s WHERE name = %(name)s RETURNING name;

-- resume_schedule --
-- A resumed schedule fires from its next tick after now: ticks passed while paused are skipped.
UPDATE schedules SET paused = FALSE, next_fire_at = %(next_fire_at)s, updated_at = %(now)s
WHERE name = %(name)s RETURNING name;

-- delete_schedule --
DELETE FROM schedules WHERE name = %(name)s RETURNING name;

-- advance_schedule --
-- After firing the tick ``expected``: only the worker that still sees it as the next tick
-- moves the schedule on (the others' fires were the same idempotent start).
UPDATE schedules
SET next_fire_at = %(next_fire_at)s,
    last_fire_at = greatest(last_fire_at, %(fired_at)s::bigint)  -- NULL fired_at: none fired
WHERE name = %(name)s AND next_fire_at = %(expected)s AND NOT paused
RETURNING name;

-- schedule_fired --
-- A run triggered by hand: the schedule's last fire, if it is the latest.
UPDATE schedules SET last_fire_at = greatest(coalesce(last_fire_at, 0), %(fired_at)s)
WHERE name = %(name)s;

-- workflow_name_seen --
-- Whether the database knows a workflow by this name (a client cannot see the registries).
SELECT 1 AS seen
WHERE EXISTS (SELECT 1 FROM workflow_status WHERE name = %(name)s)
   OR EXISTS (SELECT 1 FROM schedules WHERE workflow_name = %(name)s);
