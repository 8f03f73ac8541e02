-- Reads of DBOS tables the engine has no counterpart for. {dbos}: as in dbos_actions.sql.

-- queue_limits --
-- Queue limits DBOS records for database-backed queues (its `queues` table).
SELECT name, concurrency, worker_concurrency, rate_limit_max, rate_limit_period_sec
FROM {dbos}queues;

-- schedules --
-- Schedules made with DBOS.create_schedule (its `workflow_schedules` table).
SELECT workflow_name, schedule FROM {dbos}workflow_schedules WHERE status = 'ACTIVE';

-- streams --
-- A workflow's streams: each key with its number of values (capped by the caller's limit).
SELECT key, count(*) FROM {dbos}streams WHERE workflow_uuid = %(id)s GROUP BY key ORDER BY key
LIMIT 50;

-- event_history --
-- Every value set_event gave each key, with the step that set it (dbos-py's immutable
-- workflow_events_history), oldest first: the start of each value and its length.
SELECT function_id, key, substr(value, 1, %(chars)s), length(value),
       COALESCE(serialization, 'py_pickle')
FROM {dbos}workflow_events_history WHERE workflow_uuid = %(id)s
ORDER BY function_id, key LIMIT %(limit)s;

-- event_history_count --
SELECT count(*) FROM {dbos}workflow_events_history WHERE workflow_uuid = %(id)s;
