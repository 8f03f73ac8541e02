"""Debouncing bursts (engine/debounce.py, engine/admission.py): join the open burst of a name
and key, or open one as a DELAYED workflow row.

Owned by the store as ``store.bursts``; it gets the store's primitives explicitly.
"""

from __future__ import annotations

from engine import clock
from engine.store import records, statements


class Bursts:
    def __init__(
        self,
        *,
        write: statements.Write,
        write_together: statements.WriteTogether,
        is_unique_violation: statements.UniqueViolation,
    ) -> None:
        self._write = write
        self._write_together = write_together
        self._is_unique_violation = is_unique_violation

    def push_burst(
        self, name: str, key: str, inputs: str, period_ms: int, max_wait_ms: int | None
    ) -> tuple[str | None, bool]:
        """Join the open burst of ``name`` and ``key``: (its workflow ID or None when none is
        open, whether a burst that was due got started on the way)."""
        params = {
            "name": name,
            "debounce_key": key,
            "inputs": inputs,
            "period_ms": period_ms,
            "max_wait_ms": max_wait_ms,
            "now": clock.now_ms(),
        }
        due, pushed = self._write_together(
            ("debounce_start_due", {k: params[k] for k in ("name", "debounce_key", "now")}),
            ("debounce_push", params),
        )
        return (pushed[0]["workflow_uuid"] if pushed else None), bool(due)

    def open_burst(self, new: records.NewWorkflow) -> bool:
        """Insert the DELAYED row opening a burst; False when another process opened one of
        the same name and key first."""
        _, params = statements.workflow_statement(new)
        try:
            return bool(
                self._write("insert_debounced", {**params, "debounce_key": new.debounce_key})
            )
        except Exception as exc:
            if self._is_unique_violation(exc, "debounce_key"):
                return False
            raise
