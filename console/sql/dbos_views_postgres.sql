-- Temporary views (this connection only; nothing is written to the DBOS schema) giving a DBOS
-- system database the shapes the console reads. {dbos} is the quoted DBOS schema with a dot.
-- Inputs and outputs live in workflow_input / workflow_output since DBOS migration 109.
CREATE TEMP VIEW workflow_status AS
SELECT s.workflow_uuid, s.status, s.name,
       COALESCE(i.inputs, s.inputs) AS inputs,
       COALESCE(o.output, s.output) AS output,
       COALESCE(o.error, s.error) AS error,
       s.executor_id, s.application_version, s.application_id, s.created_at, s.updated_at,
       COALESCE(s.recovery_attempts, 0) AS recovery_attempts, s.queue_name,
       s.workflow_timeout_ms, s.workflow_deadline_epoch_ms, s.started_at_epoch_ms,
       s.completed_at, s.deduplication_id, s.priority, s.forked_from, s.parent_workflow_id,
       COALESCE(s.serialization, 'py_pickle') AS serialization, s.delay_until_epoch_ms,
       s.was_forked_from,
       -- Columns of later Waymark migrations that DBOS does not have.
       s.attributes,  -- DBOS's custom attributes (SetWorkflowAttributes), JSONB as the engine's
       NULL::text AS traceback, NULL::text AS waiting, NULL::text AS traceparent,
       NULL::text AS partition_key, NULL::text AS debounce_key
FROM {dbos}workflow_status s
LEFT JOIN {dbos}workflow_input i ON i.workflow_uuid = s.workflow_uuid
LEFT JOIN {dbos}workflow_output o ON o.workflow_uuid = s.workflow_uuid;
-- DBOS step names mapped to the engine's. A DBOS.sleep right after a recv/getEvent is that
-- wait's timeout; a sleep's output is its wake-up in epoch seconds (the engine's: ms), and
-- DBOS records the wake-up as the sleep's completion: the engine records a timer when set.
CREATE TEMP VIEW operation_outputs AS
SELECT o.workflow_uuid, o.function_id,
       CASE o.function_name
         WHEN 'DBOS.sleep' THEN
           CASE (SELECT p.function_name FROM {dbos}operation_outputs p
                 WHERE p.workflow_uuid = o.workflow_uuid AND p.function_id = o.function_id - 1)
             WHEN 'DBOS.recv' THEN 'waymark.recv.timeout'
             WHEN 'DBOS.getEvent' THEN 'waymark.get_event.timeout'
             ELSE 'waymark.sleep' END
         WHEN 'DBOS.recv' THEN 'waymark.recv'
         WHEN 'DBOS.send' THEN 'waymark.send'
         WHEN 'DBOS.setEvent' THEN 'waymark.set_event'
         WHEN 'DBOS.getEvent' THEN 'waymark.get_event'
         WHEN 'DBOS.getResult' THEN 'waymark.get_result'
         WHEN 'DBOS.writeStream' THEN 'waymark.write_stream'
         WHEN 'DBOS.closeStream' THEN 'waymark.close_stream'
         ELSE o.function_name END AS function_name,
       CASE WHEN o.function_name = 'DBOS.sleep' AND o.output ~ '^[0-9]+(\.[0-9]+)?$'
            THEN (floor(o.output::numeric * 1000))::bigint::text
            ELSE o.output END AS output,
       o.error, o.child_workflow_id, o.started_at_epoch_ms,
       CASE WHEN o.function_name = 'DBOS.sleep' THEN o.started_at_epoch_ms
            ELSE o.completed_at_epoch_ms END AS completed_at_epoch_ms,
       COALESCE(o.serialization, 'py_pickle') AS serialization
FROM {dbos}operation_outputs o;
-- Waiting messages are the unconsumed ones; DBOS has no sequence: creation time orders them.
CREATE TEMP VIEW notifications AS
SELECT message_uuid, destination_uuid, topic, message, created_at_epoch_ms,
       COALESCE(serialization, 'py_pickle') AS serialization, created_at_epoch_ms AS seq
FROM {dbos}notifications WHERE NOT consumed;
CREATE TEMP VIEW workflow_events AS
SELECT workflow_uuid, key, value, COALESCE(serialization, 'py_pickle') AS serialization
FROM {dbos}workflow_events;
-- DBOS keeps no executor heartbeats: no rows, and the console says liveness is unknown.
CREATE TEMP VIEW executors AS
SELECT NULL::text AS executor_id, NULL::text AS application_version, NULL::text AS hostname,
       NULL::int AS pid, NULL::text AS queues, NULL::text AS schedules,
       NULL::bigint AS started_at, NULL::bigint AS last_heartbeat,
       NULL::text AS role, NULL::text AS node_name
WHERE false;
-- DBOS's streams in the engine's shape: its offset is the position; a stream ends with
-- close_stream's marker, the string "__DBOS_STREAM_CLOSED__" always written as portable JSON
-- (dbos._sys_db._dbos_stream_closed_sentinel), or when its workflow ends. Values keep their
-- serialization, the stream page decodes them by it.
CREATE TEMP VIEW streams AS
SELECT workflow_uuid, key, "offset" AS seq, value,
       CASE WHEN serialization = 'portable_json' AND value = '"__DBOS_STREAM_CLOSED__"'
            THEN 1 ELSE 0 END AS closed,
       function_id, COALESCE(serialization, 'py_pickle') AS serialization
FROM {dbos}streams;
-- Failed attempts are Waymark's own table: a DBOS source shows none.
CREATE TEMP VIEW operation_attempts AS
SELECT NULL::text AS workflow_uuid, NULL::int AS function_id, NULL::int AS attempt, NULL::text AS error,
       NULL::text AS traceback, NULL::bigint AS started_at_epoch_ms, NULL::bigint AS completed_at_epoch_ms
WHERE false;
-- Managed schedules are Waymark's own table (DBOS's workflow_schedules are read apart, see
-- dbos_reads.sql): a DBOS source has none here.
CREATE TEMP VIEW schedules AS
SELECT NULL::text AS name, NULL::text AS workflow_name, NULL::text AS cron,
       NULL::text AS timezone, NULL::text AS queue, NULL::boolean AS paused,
       NULL::bigint AS next_fire_at, NULL::bigint AS last_fire_at,
       NULL::bigint AS created_at, NULL::bigint AS updated_at
WHERE false;
