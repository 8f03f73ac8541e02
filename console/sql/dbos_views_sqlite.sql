-- Temporary views (this connection only; nothing is written to the DBOS schema) giving a DBOS
-- system database the shapes the console reads. {dbos} is the "main." (temp views name the main database's tables).
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
       s.attributes,  -- DBOS's custom attributes (SetWorkflowAttributes), JSON text as the engine's
       CAST(NULL AS TEXT) AS traceback, CAST(NULL AS TEXT) AS waiting, CAST(NULL AS TEXT) AS traceparent,
       CAST(NULL AS TEXT) AS partition_key, CAST(NULL AS TEXT) AS debounce_key
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
       CASE WHEN o.function_name = 'DBOS.sleep' AND o.output GLOB '[0-9]*' AND o.output NOT GLOB '*[^0-9.]*'
            THEN CAST(CAST(CAST(o.output AS REAL) * 1000 AS INTEGER) AS TEXT)
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
-- The engine's attribute index on SQLite (one row per key, its value in canonical JSON, as
-- engine migration 0007's triggers write it), computed from DBOS's attributes column.
CREATE TEMP VIEW workflow_attributes AS
SELECT j.key AS key,
       CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null'
                   WHEN 'object' THEN j.value WHEN 'array' THEN j.value
                   ELSE json_quote(j.value) END AS value,
       s.workflow_uuid AS workflow_uuid
FROM {dbos}workflow_status s,
     json_each(CASE WHEN json_valid(s.attributes) AND json_type(s.attributes) = 'object'
                    THEN s.attributes ELSE '{}' END) j
WHERE s.attributes IS NOT NULL;
-- DBOS keeps no executor heartbeats: no rows, and the console says liveness is unknown.
CREATE TEMP VIEW executors AS
SELECT CAST(NULL AS TEXT) AS executor_id, CAST(NULL AS TEXT) AS application_version, CAST(NULL AS TEXT) AS hostname,
       CAST(NULL AS INTEGER) AS pid, CAST(NULL AS TEXT) AS queues, CAST(NULL AS TEXT) AS schedules,
       CAST(NULL AS INTEGER) AS started_at, CAST(NULL AS INTEGER) AS last_heartbeat,
       CAST(NULL AS TEXT) AS role, CAST(NULL AS TEXT) AS node_name
WHERE 0;
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
SELECT CAST(NULL AS TEXT) AS workflow_uuid, CAST(NULL AS INTEGER) AS function_id, CAST(NULL AS INTEGER) AS attempt, CAST(NULL AS TEXT) AS error,
       CAST(NULL AS TEXT) AS traceback, CAST(NULL AS INTEGER) AS started_at_epoch_ms, CAST(NULL AS INTEGER) AS completed_at_epoch_ms
WHERE 0;
-- Managed schedules are Waymark's own table (DBOS's workflow_schedules are read apart, see
-- dbos_reads.sql): a DBOS source has none here.
CREATE TEMP VIEW schedules AS
SELECT CAST(NULL AS TEXT) AS name, CAST(NULL AS TEXT) AS workflow_name, CAST(NULL AS TEXT) AS cron,
       CAST(NULL AS TEXT) AS timezone, CAST(NULL AS TEXT) AS queue, CAST(NULL AS INTEGER) AS paused,
       CAST(NULL AS INTEGER) AS next_fire_at, CAST(NULL AS INTEGER) AS last_fire_at,
       CAST(NULL AS INTEGER) AS created_at, CAST(NULL AS INTEGER) AS updated_at
WHERE 0;
