"""A workflow's streams (``ctx.write_stream``, ``read_stream``): each append recorded with the
step that made it, readers woken at commit.

Owned by the store as ``store.streams``; it gets the store's primitives explicitly.
"""

from __future__ import annotations

from typing import Any

from engine import signals
from engine.store import records, statements


class Streams:
    def __init__(
        self,
        *,
        write_together: statements.WriteTogether,
        rows: statements.Rows,
        row: statements.Row,
        notify: statements.Notify,
    ) -> None:
        self._write_together = write_together
        self._rows = rows
        self._row = row
        self._notify = notify

    def write_stream(
        self,
        step: records.NewStep,
        key: str,
        value: str | None,
        closed: bool,
        executor_id: str,
    ) -> records.StepOutcome:
        """Append a value (or the close marker) to a stream and record the step that did, in
        one transaction; readers elsewhere are woken at commit."""
        item = {
            "workflow_id": step.workflow_id,
            "key": key,
            "value": value,
            "closed": int(closed),
            "step_id": step.step_id,
        }
        _, step_rows, *_ = self._write_together(
            ("write_stream", item),
            statements.step_statement(step),
            *self._notify(signals.stream_key(step.workflow_id, key)),
        )
        return statements.step_outcome(step_rows, executor_id)

    def read_stream(self, workflow_id: str, key: str, offset: int) -> list[Any]:
        """Rows (seq, value, closed) from ``offset`` on, in order (at most 1,000)."""
        params = {"workflow_id": workflow_id, "key": key, "offset": offset}
        return self._rows("read_stream", params)

    def stream_closed(self, workflow_id: str, key: str) -> bool:
        params = {"workflow_id": workflow_id, "key": key}
        return self._row("stream_closed", params) is not None

    def list_streams(self, workflow_id: str) -> list[Any]:
        """Rows (key, items, closed) of a workflow's streams."""
        return self._rows("list_streams", {"workflow_id": workflow_id})
