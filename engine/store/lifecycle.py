"""Data lifecycle (engine/lifecycle.py): each in a transaction of its own, off the group
committer, so a long delete or import never holds up workflow writes.

Owned by the store as ``store.lifecycle``; it gets the store's primitives explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from engine.store import statements


class Lifecycle:
    def __init__(
        self,
        *,
        rows: statements.Rows,
        exclusive: statements.Exclusive,
        retrying: statements.Retrying,
    ) -> None:
        self._rows = rows
        self._exclusive = exclusive
        self._retrying = retrying

    def lifecycle_rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        """A lifecycle read (export, children, garbage collection candidates) as dicts."""
        return [dict(row) for row in self._rows(query, params)]

    def delete_final(self, workflow_ids: Sequence[str]) -> list[str]:
        """Delete those of ``workflow_ids`` that are final, with every row held by their IDs;
        the IDs deleted. An unfinished one is left alone (locked first on Postgres, so a
        resume landing meanwhile waits, then finds nothing)."""

        def attempt() -> list[str]:
            with self._exclusive() as run:
                locked = run("lifecycle_lock_final", ids=json.dumps(list(workflow_ids)))
                if not locked:
                    return []
                ids = json.dumps([row["workflow_uuid"] for row in locked])
                run("lifecycle_delete_steps", ids=ids)
                run("lifecycle_delete_events", ids=ids)
                run("lifecycle_delete_messages", ids=ids)
                run("lifecycle_delete_attempts", ids=ids)
                run("lifecycle_delete_streams", ids=ids)
                # Every table that holds rows by workflow ID has its delete here.
                return [row["workflow_uuid"] for row in run("lifecycle_delete_workflows", ids=ids)]

        return self._retrying(attempt)  # type: ignore[no-any-return]

    def import_rows(
        self, workflow: Mapping[str, Any], held: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> bool:
        """Insert an exported workflow's row and the rows it holds (by insert query: steps,
        events, messages, attempts, stream items) in one transaction; False when the ID
        exists."""

        def attempt() -> bool:
            with self._exclusive() as run:
                if not run("import_workflow_row", **workflow):
                    return False
                for name, rows in held.items():
                    for row in rows:
                        run(name, **row)
                return True

        return self._retrying(attempt)  # type: ignore[no-any-return]
