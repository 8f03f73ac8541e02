"""Turning the store's records into the records of the public API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from engine import attributes, errors, serialization
from engine.records import Status, StepInfo, WorkflowStatus
from engine.store import records


def from_ms(ms: int | None) -> dt.datetime | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def to_ms(value: dt.datetime | float | int | None, what: str) -> int | None:
    """An aware datetime (or epoch seconds) as epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{what} must be timezone-aware (e.g. datetime.now(datetime.UTC))")
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value * 1000)
    raise TypeError(
        f"{what} must be an aware datetime or epoch seconds, got {type(value).__name__}"
    )


def _status(value: str) -> Status | str:
    try:
        return Status(value)
    except ValueError:
        return value  # an unknown status written by a newer version: show it as it is


def _payload(text: str | None, what: str, inputs: bool = False) -> Any:
    # Inspection must work on a corrupt row too: show the raw text rather than fail the listing.
    try:
        if inputs:
            return serialization.decode_inputs(text, what)
        return serialization.loads(text, what)
    except errors.SerializationError:
        return text


def _error(text: str | None, what: str) -> dict[str, str] | None:
    try:
        return serialization.public_error(text, what)
    except errors.SerializationError:
        return {"name": "CorruptError", "message": str(text)}


def error_of(text: str | None, what: str) -> dict[str, str] | None:
    """A stored error in the public ``{"name", "message"}`` shape (never raises)."""
    return _error(text, what)


def workflow_status(row: records.WorkflowRow) -> WorkflowStatus:
    wid = row.workflow_id
    return WorkflowStatus(
        workflow_id=wid,
        status=_status(row.status),  # type: ignore[arg-type]
        name=row.name,
        input=_payload(row.inputs, f"the input of workflow {wid!r}", inputs=True),
        output=_payload(row.output, f"the output of workflow {wid!r}"),
        error=_error(row.error, f"the error of workflow {wid!r}"),
        created_at=from_ms(row.created_at),  # type: ignore[arg-type]
        updated_at=from_ms(row.updated_at),  # type: ignore[arg-type]
        application_version=row.application_version,
        executor_id=row.executor_id,
        queue_name=row.queue_name,
        timeout=row.timeout_ms / 1000 if row.timeout_ms is not None else None,
        deadline=from_ms(row.deadline_ms),
        recovery_attempts=row.recovery_attempts,
        parent_workflow_id=row.parent_workflow_id,
        forked_from=row.forked_from,
        attributes=attributes.decode(row.attributes),
        partition_key=row.partition_key,
    )


def workflow_status_of_columns(columns: Mapping[str, Any]) -> WorkflowStatus:
    """``workflow_status`` for a row read elsewhere (the console's models), by column name."""
    return workflow_status(records.workflow_row(columns))


def step_info(workflow_id: str, row: records.StepRow) -> StepInfo:
    what = f"step {row.step_id} of workflow {workflow_id!r}"
    return StepInfo(
        step_id=row.step_id,
        name=row.name,
        output=_payload(row.output, f"the output of {what}"),
        error=_error(row.error, f"the error of {what}"),
        child_workflow_id=row.child_workflow_id,
        started_at=from_ms(row.started_at),
        completed_at=from_ms(row.completed_at),
    )


def step_info_of_columns(workflow_id: str, columns: Mapping[str, Any]) -> StepInfo:
    """``step_info`` for a row read elsewhere (the console's models), by column name."""
    return step_info(workflow_id, records.step_row(columns))
