"""The store's typed records: what reading a workflow or step row gives the rest of the engine,
and what creating one takes.

Column names live here, in the backends and in the SQL, nowhere else: the functions at the
bottom are the one place a row (a mapping of column name to value, as ``sqlite3.Row``, psycopg's
``dict_row`` or a Django model's columns) becomes a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    """One row of ``workflow_status`` (times in epoch ms)."""

    workflow_id: str
    status: str
    name: str
    inputs: str | None
    output: str | None
    error: str | None
    executor_id: str | None
    application_version: str | None
    created_at: int
    updated_at: int
    recovery_attempts: int
    queue_name: str | None
    timeout_ms: int | None
    deadline_ms: int | None
    started_at: int | None
    completed_at: int | None
    parent_workflow_id: str | None
    forked_from: str | None
    # Claimed with no step recorded yet: the executor need not read any back.
    fresh: bool = False
    # Created by this process to run here now (a start, a child, a fork): no execution here
    # can hold it already, unless the orphan sweep adopted it first (then this one stands down).
    # Where the row came from, not what it holds: not compared.
    admitted: bool = field(default=False, compare=False)
    # Known for rows made in this process; else read when tracing is on (engine/tracing.py).
    traceparent: str | None = None
    # Only from queries that select it; a dict when read by a client that decodes JSON.
    attributes: str | dict[str, Any] | None = None
    partition_key: str | None = None  # only from queries that select it


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an awaiter reads: small, served by the primary key. ``executor_id`` tells a waiting
    execution that its workflow was handed to another executor."""

    status: str
    output: str | None
    error: str | None
    recovery_attempts: int
    executor_id: str | None


@dataclass(frozen=True, slots=True)
class NewWorkflow:
    """A workflow row to create: PENDING under ``executor_id`` (it runs there now), or ENQUEUED /
    DELAYED on ``queue_name`` for any worker of ``application_version``."""

    workflow_id: str
    name: str
    inputs: str | None
    status: str
    application_version: str | None
    application_id: str | None
    executor_id: str | None = None
    started_at: int | None = None
    queue_name: str | None = None
    timeout_ms: int | None = None
    deadline_ms: int | None = None
    priority: int = 0
    deduplication_id: str | None = None
    delay_until: int | None = None
    parent_workflow_id: str | None = None
    forked_from: str | None = None
    traceparent: str | None = None  # the starting caller's W3C trace context
    attributes: str | None = None  # a JSON object of scalars (engine/attributes.py)
    partition_key: str | None = None
    # The key of the burst this row is (engine/debounce.py); only a DELAYED row opening one.
    debounce_key: str | None = None


@dataclass(frozen=True, slots=True)
class StepRow:
    """One row of ``operation_outputs``: a recorded step (payloads as stored JSON text)."""

    step_id: int
    name: str
    output: str | None
    error: str | None
    child_workflow_id: str | None
    started_at: int | None
    completed_at: int | None


@dataclass(frozen=True, slots=True)
class NewStep:
    """A step outcome to record (``completed``: when the step ended; None: when it is written)."""

    workflow_id: str
    step_id: int
    name: str
    output: str | None
    error: str | None
    started: int
    child_workflow_id: str | None = None
    completed: int | None = None


class StepOutcome(NamedTuple):
    """What a step write reports. ``recorded``: this write stored the step (False: another
    execution recorded it first; then ``status`` is None and ``owned`` True, unknown).
    ``status``: the workflow's status right now; ``owned``: the writer still owns it."""

    recorded: bool
    status: str | None
    owned: bool


@dataclass(frozen=True, slots=True)
class Message:
    message_id: str
    message: str


@dataclass(frozen=True, slots=True)
class ExecutorRow:
    """One row of ``executors``; ``queues`` and ``schedules`` are the heartbeat's JSON
    (engine.heartbeat reads them)."""

    executor_id: str
    application_version: str
    hostname: str | None
    pid: int | None
    queues: str | None
    schedules: str | None
    started_at: int
    last_heartbeat: int


def workflow_row(columns: Mapping[str, Any]) -> WorkflowRow:
    """A ``workflow_status`` row (all its columns, or those the queries select)."""
    names = columns.keys()
    fresh = columns["fresh"] if "fresh" in names else False  # sqlite3.Row: "in" tests values
    attributes = columns["attributes"] if "attributes" in names else None
    partition_key = columns["partition_key"] if "partition_key" in names else None
    return WorkflowRow(
        workflow_id=columns["workflow_uuid"],
        status=columns["status"],
        name=columns["name"],
        inputs=columns["inputs"],
        output=columns["output"],
        error=columns["error"],
        executor_id=columns["executor_id"],
        application_version=columns["application_version"],
        created_at=columns["created_at"],
        updated_at=columns["updated_at"],
        recovery_attempts=columns["recovery_attempts"],
        queue_name=columns["queue_name"],
        timeout_ms=columns["workflow_timeout_ms"],
        deadline_ms=columns["workflow_deadline_epoch_ms"],
        started_at=columns["started_at_epoch_ms"],
        completed_at=columns["completed_at"],
        parent_workflow_id=columns["parent_workflow_id"],
        forked_from=columns["forked_from"],
        fresh=bool(fresh),
        attributes=attributes,
        partition_key=partition_key,
    )


def outcome(columns: Mapping[str, Any]) -> Outcome:
    return Outcome(
        status=columns["status"],
        output=columns["output"],
        error=columns["error"],
        recovery_attempts=columns["recovery_attempts"],
        executor_id=columns["executor_id"],
    )


def step_row(columns: Mapping[str, Any]) -> StepRow:
    return StepRow(
        step_id=columns["function_id"],
        name=columns["function_name"],
        output=columns["output"],
        error=columns["error"],
        child_workflow_id=columns["child_workflow_id"],
        started_at=columns["started_at_epoch_ms"],
        completed_at=columns["completed_at_epoch_ms"],
    )


def executor_row(columns: Mapping[str, Any]) -> ExecutorRow:
    return ExecutorRow(
        executor_id=columns["executor_id"],
        application_version=columns["application_version"],
        hostname=columns["hostname"],
        pid=columns["pid"],
        queues=columns["queues"],
        schedules=columns["schedules"],
        started_at=columns["started_at"],
        last_heartbeat=columns["last_heartbeat"],
    )


@dataclass(frozen=True, slots=True)
class NewAttempt:
    """A failed attempt of a step to record (numbered by the store)."""

    workflow_id: str
    step_id: int
    error: str | None
    traceback: str | None
    started: int
    completed: int


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One row of ``operation_attempts``: a failed attempt of a step."""

    step_id: int
    attempt: int
    error: str | None
    traceback: str | None
    started_at: int | None
    completed_at: int | None


def attempt_row(columns: Mapping[str, Any]) -> AttemptRow:
    return AttemptRow(
        step_id=columns["function_id"],
        attempt=columns["attempt"],
        error=columns["error"],
        traceback=columns["traceback"],
        started_at=columns["started_at_epoch_ms"],
        completed_at=columns["completed_at_epoch_ms"],
    )
