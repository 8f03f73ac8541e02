"""Turning system-table rows into the records of the public API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from engine import errors, serialization
from engine.records import Status, StepInfo, WorkflowStatus


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


def _payload(row: Any, column: str, what: str) -> Any:
    # Inspection must work on a corrupt row too: show the raw text rather than fail the listing.
    try:
        if column == "inputs":
            return serialization.decode_inputs(row[column], what)
        return serialization.loads(row[column], what)
    except errors.SerializationError:
        return row[column]


def workflow_status(row: Any) -> WorkflowStatus:
    wid = row["workflow_uuid"]
    timeout_ms = row["workflow_timeout_ms"]
    try:
        error = serialization.public_error(row["error"], f"the error of workflow {wid!r}")
    except errors.SerializationError:
        error = {"name": "CorruptError", "message": str(row["error"])}
    return WorkflowStatus(
        workflow_id=wid,
        status=_status(row["status"]),  # type: ignore[arg-type]
        name=row["name"],
        input=_payload(row, "inputs", f"the input of workflow {wid!r}"),
        output=_payload(row, "output", f"the output of workflow {wid!r}"),
        error=error,
        created_at=from_ms(row["created_at"]),  # type: ignore[arg-type]
        updated_at=from_ms(row["updated_at"]),  # type: ignore[arg-type]
        application_version=row["application_version"],
        executor_id=row["executor_id"],
        queue_name=row["queue_name"],
        timeout=timeout_ms / 1000 if timeout_ms is not None else None,
        deadline=from_ms(row["workflow_deadline_epoch_ms"]),
        recovery_attempts=row["recovery_attempts"],
        parent_workflow_id=row["parent_workflow_id"],
        forked_from=row["forked_from"],
    )


def step_info(workflow_id: str, row: Any) -> StepInfo:
    step_id = row["function_id"]
    what = f"step {step_id} of workflow {workflow_id!r}"
    try:
        error = serialization.public_error(row["error"], f"the error of {what}")
    except errors.SerializationError:
        error = {"name": "CorruptError", "message": str(row["error"])}
    return StepInfo(
        step_id=step_id,
        name=row["function_name"],
        output=_payload(row, "output", f"the output of {what}"),
        error=error,
        child_workflow_id=row["child_workflow_id"],
        started_at=from_ms(row["started_at_epoch_ms"]),
        completed_at=from_ms(row["completed_at_epoch_ms"]),
    )
