-- Managed schedules (issue 15): made, paused, resumed and deleted at run time by any process
-- (an engine, a Client, the console), so a pause holds on every worker. A schedule given with
-- @engine.workflow(schedule=...) is kept here too, named after its workflow.
-- cron: 5 fields, or 6 with seconds first; timezone: an IANA name the cron is read in;
-- next_fire_at: the next tick (epoch ms, UTC) a worker fires (advanced only by the worker that
-- fired it, conditionally, so every tick is fired once however many workers read the row);
-- last_fire_at: the latest tick fired or run triggered (epoch ms).
CREATE TABLE schedules (
    name          TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL DEFAULT 'UTC',
    queue         TEXT,
    paused        INTEGER NOT NULL DEFAULT 0,
    next_fire_at  INTEGER,
    last_fire_at  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
