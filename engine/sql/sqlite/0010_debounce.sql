-- Debouncing (engine/debounce.py): a burst of debounces of one key is one DELAYED workflow
-- row, whose start each debounce pushes forward and whose input it replaces. The partial
-- unique index makes that row the only unstarted one of its workflow name and key, on every
-- process at once: a second burst of the same key can only open once the first has started
-- (left DELAYED), and two processes opening the same burst collide here, the loser then
-- joining the winner's row. The index name holds the column's name, which is how the store
-- tells this collision from another unique violation.
ALTER TABLE workflow_status ADD COLUMN debounce_key TEXT;
CREATE UNIQUE INDEX workflow_status_debounce_key_idx ON workflow_status (name, debounce_key)
    WHERE debounce_key IS NOT NULL AND status = 'DELAYED';
