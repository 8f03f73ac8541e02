"""Data lifecycle: delete, export and import one workflow, and garbage-collect old ones.

Only final workflows are ever deleted (``Store.delete_final`` re-checks inside its
transaction), never one whose parent is unfinished (garbage collection), and always with every
row their ID holds. Garbage collection works in small batches, each its own short transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine import clock, errors
from engine.records import FINAL_STATUSES
from engine.store import Store

log = logging.getLogger("waymark.engine")

EXPORT_FORMAT = "waymark.workflow/1"
# Columns of workflow_status added after the first exports were made: None when absent.
_LATER_COLUMNS = {"traceback": None, "waiting": None, "attributes": None, "partition_key": None}
GC_BATCH = 500
# After each full batch, garbage collection pauses for this multiple of the batch's own time
# (a quarter duty cycle): a collection of 1,000,000 workflows otherwise keeps one database
# backend deleting without a break, and on a 2-core server W2 beside it ran 26% slower (bar:
# 20%); pausing for as long as each batch took still gave 3.7% and 26.1% in two runs, three
# times as long 6.1% (4,529 workflows/s). Pacing only; nothing waits on it.
GC_PAUSE_FRACTION = 3.0
_FINAL = {status.value for status in FINAL_STATUSES}


def _seconds(value: float | dt.timedelta, what: str) -> float:
    secs = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if secs < 0:
        raise ValueError(f"{what} must be >= 0, got {value!r}")
    return secs


class Lifecycle:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _tree(self, workflow_id: str, children: bool) -> list[dict[str, Any]]:
        """The workflow's row, then (when asked) its descendants' rows, parents first."""
        row = self._store.lifecycle.lifecycle_rows("export_workflow_row", workflow_id=workflow_id)
        if not row:
            raise errors.WorkflowNotFoundError(workflow_id)
        found, todo = [row[0]], [workflow_id] if children else []
        seen = {workflow_id}
        while todo:
            parent = todo.pop()
            for child in self._store.lifecycle.lifecycle_rows(
                "lifecycle_children", workflow_id=parent
            ):
                child_id = child["workflow_uuid"]
                if child_id in seen:
                    continue
                seen.add(child_id)
                rows = self._store.lifecycle.lifecycle_rows(
                    "export_workflow_row", workflow_id=child_id
                )
                found.extend(rows)
                todo.append(child_id)
        return found

    def delete_workflow(self, workflow_id: str, *, delete_children: bool = False) -> None:
        """Delete a final workflow (and, when asked, its descendants, all of which must be
        final) with its steps, events and messages; EngineError if one is unfinished."""
        rows = self._tree(workflow_id, delete_children)
        unfinished = [r["workflow_uuid"] for r in rows if r["status"] not in _FINAL]
        if unfinished:
            raise errors.EngineError(
                f"cannot delete workflow {workflow_id!r}: {', '.join(map(repr, unfinished[:5]))} "
                "is not final (cancel it, or wait until it ends)"
            )
        ids = [r["workflow_uuid"] for r in rows]
        deleted = set(self._store.lifecycle.delete_final(ids))
        if workflow_id not in deleted:
            raise errors.EngineError(
                f"cannot delete workflow {workflow_id!r}: it is no longer final (resumed?)"
            )

    def export_workflow(self, workflow_id: str, *, children: bool = False) -> dict[str, Any]:
        """Everything needed to recreate the workflow (and its descendants) elsewhere."""
        workflows = []
        for row in self._tree(workflow_id, children):
            wid = row["workflow_uuid"]
            workflows.append(
                {
                    "workflow": row,
                    "steps": self._store.lifecycle.lifecycle_rows("export_steps", workflow_id=wid),
                    "events": self._store.lifecycle.lifecycle_rows(
                        "export_events", workflow_id=wid
                    ),
                    "messages": self._store.lifecycle.lifecycle_rows(
                        "export_messages", workflow_id=wid
                    ),
                    "attempts": self._store.lifecycle.lifecycle_rows(
                        "export_attempts", workflow_id=wid
                    ),
                    "streams": self._store.lifecycle.lifecycle_rows(
                        "export_streams", workflow_id=wid
                    ),
                }
            )
        return {"format": EXPORT_FORMAT, "workflow_id": workflow_id, "workflows": workflows}

    def import_workflow(self, data: Mapping[str, Any]) -> str:
        """Recreate an exported workflow (and its exported descendants); its ID.
        ConflictingWorkflowError if any of them exists here (then none is imported)."""
        if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
            raise ValueError(f"not a Waymark workflow export (format {EXPORT_FORMAT!r})")
        imported: list[str] = []
        for item in data["workflows"]:
            row = {**_LATER_COLUMNS, **item["workflow"]}  # an older export lacks them
            wid = row["workflow_uuid"]
            held = {
                "import_step": [{**s, "workflow_uuid": wid} for s in item.get("steps", [])],
                "import_event": [{**e, "workflow_uuid": wid} for e in item.get("events", [])],
                "import_message": [
                    {**m, "destination_uuid": wid} for m in item.get("messages", [])
                ],
                "import_attempt": [{**a, "workflow_uuid": wid} for a in item.get("attempts", [])],
                "import_stream": [{**t, "workflow_uuid": wid} for t in item.get("streams", [])],
            }
            if not self._store.lifecycle.import_rows(row, held):
                if imported:  # all or nothing: take back what this call made
                    self._store.lifecycle.delete_final(imported)
                there = self._store.lifecycle.lifecycle_rows("export_workflow_row", workflow_id=wid)
                existing = there[0]["name"] if there else row["name"]
                raise errors.ConflictingWorkflowError(wid, existing, row["name"])
            imported.append(wid)
        return str(data["workflow_id"])

    def garbage_collect(
        self,
        *,
        older_than: float | dt.timedelta,
        keep_last: int | None = None,
        name: str | None = None,
        exclude: Sequence[str] = (),
        batch_size: int = GC_BATCH,
        limit: int | None = None,
    ) -> int:
        """Delete final workflows completed more than ``older_than`` ago and not among the
        newest ``keep_last`` final ones, oldest first, ``batch_size`` per transaction; never
        one whose parent is unfinished. ``name``: only that workflow name; ``exclude``: not those
        names (retention overrides); ``limit``: stop after that many (a retention pass)."""
        names = {"name": name, "exclude": json.dumps(list(exclude))}
        cutoff = clock.now_ms() - int(_seconds(older_than, "older_than") * 1000)
        if keep_last is not None and keep_last < 0:
            raise ValueError(f"keep_last must be >= 0, got {keep_last!r}")
        b_at, b_id = cutoff, "\U0010ffff"  # no keep_last: the cutoff alone decides
        if keep_last is not None:
            boundary = self._store.lifecycle.lifecycle_rows(
                "lifecycle_gc_boundary", keep_last=keep_last, **names
            )
            if not boundary:
                return 0  # no more than keep_last final workflows
            b_at, b_id = boundary[0]["completed_at"], boundary[0]["workflow_uuid"]
        deleted = 0
        while limit is None or deleted < limit:
            batch_started = time.monotonic()
            size = batch_size if limit is None else min(batch_size, limit - deleted)
            ids = [
                r["workflow_uuid"]
                for r in self._store.lifecycle.lifecycle_rows(
                    "lifecycle_gc_candidates",
                    cutoff=cutoff,
                    b_at=b_at,
                    b_id=b_id,
                    limit=size,
                    **names,
                )
            ]
            if not ids:
                break
            gone = self._store.lifecycle.delete_final(ids)
            deleted += len(gone)
            if not gone:
                break  # all resumed meanwhile: the next pass looks again
            if len(ids) == size:  # more may follow: leave the database a breather
                time.sleep((time.monotonic() - batch_started) * GC_PAUSE_FRACTION)
        if deleted:
            log.info(
                "garbage collection deleted %d workflows",
                deleted,
                extra={"action": "workflow.gc", "deleted": deleted},
            )
        return deleted
