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
            "completed": clock.now_ms(),
        },
    )


def step_outcome(rows: Sequence[Any], executor_id: str) -> records.StepOutcome:
    """What a step write's rows say (see ``records.StepOutcome``)."""
    if rows:
        return records.StepOutcome(True, rows[0]["status"], rows[0]["owner"] == executor_id)
    return records.StepOutcome(False, None, True)
