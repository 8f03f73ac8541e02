-- Parity with DBOS (issue 15).

-- Workflow attributes: searchable business keys, a JSON object of scalars, matched by
-- containment (attributes @> '{"customer": "42"}') through a GIN index.
ALTER TABLE workflow_status ADD COLUMN attributes JSONB;
CREATE INDEX workflow_status_attributes_idx ON workflow_status
    USING GIN (attributes jsonb_path_ops) WHERE attributes IS NOT NULL;
