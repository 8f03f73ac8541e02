"""What the runtime reports to the worker metrics when it takes and ends a workflow."""

from __future__ import annotations

from engine import clock
from engine.metrics import NullMetrics
from engine.runs import Run
from engine.store import records


def claimed(metrics: NullMetrics, row: records.WorkflowRow) -> None:
    """A row this process begins to execute: a fresh one counts as started; one taken from a
    queue reports how long it waited there (created -> dequeued)."""
    if row.fresh:
        metrics.workflow_started(row.name)
    if row.queue_name is not None and row.started_at is not None and row.recovery_attempts == 0:
        metrics.queue_wait(row.queue_name, (row.started_at - row.created_at) / 1000)


def finished(metrics: NullMetrics, run: Run, outcome: records.Outcome) -> None:
    metrics.workflow_finished(run.name, outcome.status, (clock.now_ms() - run.created_at) / 1000)
