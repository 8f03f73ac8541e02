"""Failed step attempts, workflow tracebacks and what a PENDING workflow waits on (issue #12).

Owned by the store as ``store.attempts``; it gets the store's primitives explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.store import records, statements


class Attempts:
    def __init__(
        self,
        *,
        write: statements.Write,
        rows: statements.Rows,
        row: statements.Row,
        list_param: statements.ListParam,
    ) -> None:
        self._write = write
        self._rows = rows
        self._row = row
        self._list_param = list_param

    def record_attempt(self, attempt: records.NewAttempt) -> int | None:
        """Record one failed attempt of a step; its number (None: a duplicate execution's
        record of the same number came first)."""
        params = {
            "workflow_id": attempt.workflow_id,
            "step_id": attempt.step_id,
            "error": attempt.error,
            "traceback": attempt.traceback,
            "started": attempt.started,
            "completed": attempt.completed,
        }
        rows = self._write("record_attempt", params)
        return int(rows[0]["attempt"]) if rows else None

    def list_attempts(self, workflow_id: str, step_id: int | None) -> list[records.AttemptRow]:
        rows = self._rows("list_attempts", {"workflow_id": workflow_id, "step_id": step_id})
        return [records.attempt_row(row) for row in rows]

    def workflow_tracebacks(self, workflow_ids: Sequence[str]) -> dict[str, str]:
        """The tracebacks of those of ``workflow_ids`` that ended in ERROR with one."""
        if not workflow_ids:
            return {}
        params = {"workflow_ids": self._list_param(workflow_ids)}
        return {
            row["workflow_uuid"]: row["traceback"]
            for row in self._rows("workflow_tracebacks", params)
        }

    def set_waiting(self, workflow_id: str, executor_id: str, waiting: str | None) -> None:
        params = {"workflow_id": workflow_id, "executor_id": executor_id, "waiting": waiting}
        self._write("set_waiting", params)

    def get_waiting(self, workflow_id: str) -> str | None:
        row = self._row("get_waiting", {"workflow_id": workflow_id})
        return row["waiting"] if row is not None else None
