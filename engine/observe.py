"""What the runtime reports when it takes and ends a workflow: worker metrics, and the span of
each execution (when tracing is on)."""

from __future__ import annotations

import contextlib

from engine import clock, tracing
from engine.metrics import NullMetrics
from engine.runs import Run
from engine.store import Store, records


def claimed(metrics: NullMetrics, row: records.WorkflowRow) -> None:
    """A row this process begins to execute: a fresh one counts as started; one taken from a
    queue reports how long it waited there (created -> dequeued)."""
    if row.fresh:
        metrics.workflow_started(row.name)
    if row.queue_name is not None and row.started_at is not None and row.recovery_attempts == 0:
        metrics.queue_wait(row.queue_name, (row.started_at - row.created_at) / 1000)


def finished(metrics: NullMetrics, run: Run, outcome: records.Outcome) -> None:
    metrics.workflow_finished(run.name, outcome.status, (clock.now_ms() - run.created_at) / 1000)


def execution_span(
    store: Store, row: records.WorkflowRow, executor_id: str
) -> contextlib.AbstractContextManager[object]:
    """The span of this execution, in the trace the workflow was started in (read from its row
    when this process did not create it); nothing at all when tracing is off."""
    if not tracing.enabled():
        return contextlib.nullcontext()
    traceparent = row.traceparent
    if traceparent is None and not (row.fresh and row.queue_name is None):
        traceparent = store.get_traceparent(row.workflow_id)
    return tracing.workflow_span(
        traceparent,
        workflow_id=row.workflow_id,
        name=row.name,
        queue=row.queue_name,
        application_version=row.application_version,
        executor_id=executor_id,
        recovery=row.recovery_attempts > 0,
    )
