"""The statements and primitives the store's parts share.

``workflow_statement`` and ``step_statement`` build the group-commit statements that several
parts write together with their own (a child's start, a recv step, an event); the type aliases
name the store primitives each part receives explicitly in its constructor (see ``base.Store``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine import clock
from engine.store import groupcommit, records

# The store's primitives, as its parts receive them.
Write = Callable[[str, Mapping[str, Any]], list[Any]]
WriteTogether = Callable[..., list[list[Any]]]
Rows = Callable[[str, Mapping[str, Any]], list[Any]]
Row = Callable[[str, Mapping[str, Any]], Any | None]
Notify = Callable[[str], list[groupcommit.Statement]]
Exclusive = Callable[[], contextlib.AbstractContextManager[Callable[..., list[Any]]]]
Retrying = Callable[[Callable[[], Any]], Any]
UniqueViolation = Callable[[Exception, str], bool]
ListParam = Callable[[Sequence[str] | None], Any]


def workflow_statement(new: records.NewWorkflow) -> groupcommit.Statement:
    """The insert_workflow statement for a new row (also used inside compound writes)."""
    return (
        "insert_workflow",
        {
            "workflow_id": new.workflow_id,
            "status": new.status,
            "name": new.name,
            "inputs": new.inputs,
            "executor_id": new.executor_id,
            "application_version": new.application_version,
            "application_id": new.application_id,
            "now": clock.now_ms(),
            "started_at": new.started_at,
            "parent_workflow_id": new.parent_workflow_id,
            "forked_from": new.forked_from,
            "queue_name": new.queue_name,
            "timeout_ms": new.timeout_ms,
            "deadline_ms": new.deadline_ms,
            "priority": new.priority,
            "deduplication_id": new.deduplication_id,
            "delay_until": new.delay_until,
            "traceparent": new.traceparent,
            "attributes": new.attributes,
            "partition_key": new.partition_key,
        },
    )


def step_statement(step: records.NewStep) -> groupcommit.Statement:
    return (
        "record_step",
        {
            "workflow_id": step.workflow_id,
            "step_id": step.step_id,
            "name": step.name,
            "output": step.output,
            "error": step.error,
            "child_workflow_id": step.child_workflow_id,
            "started": step.started,
            "completed": step.completed if step.completed is not None else clock.now_ms(),
        },
    )


def step_outcome(rows: Sequence[Any], executor_id: str) -> records.StepOutcome:
    """What a step write's rows say (see ``records.StepOutcome``)."""
    if rows:
        return records.StepOutcome(True, rows[0]["status"], rows[0]["owner"] == executor_id)
    return records.StepOutcome(False, None, True)


def finish_statements(
    workflow_id: str,
    status: str,
    executor_id: str,
    output: str | None,
    error: str | None,
    traceback: str | None,
    after_step: int | None = None,
) -> list[groupcommit.Statement]:
    """The final write: finish_workflow (``after_step``: only if the statement before it, in the
    same write, recorded that step), and a failure's traceback with it."""
    finished = {
        "workflow_id": workflow_id,
        "status": status,
        "output": output,
        "error": error,
        "now": clock.now_ms(),
        "executor_id": executor_id,
        "after_step": after_step,
    }
    if traceback is None:
        return [("finish_workflow", finished)]
    traced = {"workflow_id": workflow_id, "executor_id": executor_id, "traceback": traceback}
    return [("finish_workflow", finished), ("set_workflow_traceback", traced)]


def finish_outcome(
    rows: Sequence[Any], status: str, executor_id: str, output: str | None, error: str | None
) -> records.Outcome | None:
    """What the final write's rows say: the outcome written, or None (not written)."""
    if not rows:
        return None
    return records.Outcome(status, output, error, rows[0]["recovery_attempts"], executor_id)
