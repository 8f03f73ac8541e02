"""Messages and events: ``send``/``recv`` and ``set_event``/``get_event``; each write that a
step makes is recorded with that step in one transaction, waiters woken at commit.

Owned by the store as ``store.messages``; it gets the store's primitives explicitly.
"""

from __future__ import annotations

from engine import clock, signals
from engine.store import records, statements


class Messages:
    def __init__(
        self,
        *,
        write_together: statements.WriteTogether,
        row: statements.Row,
        notify: statements.Notify,
    ) -> None:
        self._write_together = write_together
        self._row = row
        self._notify = notify

    def send_message(
        self, destination_id: str, message: str, topic: str | None, message_id: str
    ) -> bool:
        """False when the destination does not exist (or this message_id was sent before)."""
        params = {
            "destination_id": destination_id,
            "topic": topic,
            "message": message,
            "message_id": message_id,
            "now": clock.now_ms(),
        }
        rows, *_ = self._write_together(
            ("send_message", params), *self._notify(signals.message_key(destination_id))
        )
        return bool(rows)

    def oldest_message(self, workflow_id: str, topic: str | None) -> records.Message | None:
        row = self._row("oldest_message", {"workflow_id": workflow_id, "topic": topic})
        return records.Message(row["message_uuid"], row["message"]) if row is not None else None

    def consume_message(
        self, step: records.NewStep, message_id: str, executor_id: str
    ) -> records.StepOutcome:
        """Record the recv step and delete the message it holds, in one transaction."""
        delete = {
            "message_id": message_id,
            "workflow_id": step.workflow_id,
            "step_id": step.step_id,
            "output": step.output,
        }
        step_rows, _ = self._write_together(
            statements.step_statement(step), ("delete_message", delete)
        )
        return statements.step_outcome(step_rows, executor_id)

    def set_event(
        self, step: records.NewStep, key: str, value: str, executor_id: str
    ) -> records.StepOutcome:
        """Publish an event and record the step that did, in one transaction."""
        event = {"workflow_id": step.workflow_id, "key": key, "value": value}
        _, step_rows, *_ = self._write_together(
            ("set_event", event),
            statements.step_statement(step),
            *self._notify(signals.event_key(step.workflow_id)),
        )
        return statements.step_outcome(step_rows, executor_id)

    def get_event(self, workflow_id: str, key: str) -> str | None:
        """The event's stored value (JSON text), or None when it was never set."""
        row = self._row("get_event", {"workflow_id": workflow_id, "key": key})
        return row["value"] if row is not None else None
