"""One execution of a workflow body, to its end: run it in its context, then record how it
ended (SUCCESS, ERROR) unless it was stopped (cancelled, timed out, shut down, taken over)."""

from __future__ import annotations

import datetime as dt
import logging

from engine import attempts, errors, scheduler, serialization, tracing
from engine.checkpoints import Checkpoints, Fenced, Interrupted, Replay
from engine.context import WorkflowContext
from engine.records import Status
from engine.registry import WorkflowDef
from engine.runs import Run
from engine.services import Services
from engine.store import records

log = logging.getLogger("waymark.engine")


def log_fenced(workflow_id: str, executor_id: str, owner: str | None) -> None:
    log.warning(
        "workflow %s was handed to %s (this executor was taken for dead): stopped here",
        workflow_id,
        owner or "another executor",
        extra={
            "action": "workflow.fenced",
            "workflow_id": workflow_id,
            "executor_id": executor_id,
            "owner": owner,
        },
    )


def run_body(
    services: Services,
    definition: WorkflowDef,
    workflow_id: str,
    input: object,
    recorded: dict[int, records.StepRow] | None,
    deadline_ms: int | None,
    run: Run,
) -> records.Outcome | None:
    """Run the body; the final outcome, or None when it ended without one here (shutdown,
    taken over). ``Parked`` and ``SystemDatabaseUnavailableError`` propagate."""
    if definition.schedule is not None and isinstance(input, str):
        input = dt.datetime.fromisoformat(input)  # stored as ISO text: hand back the tick
    else:
        input = scheduler.tick_input(workflow_id, input)  # a managed schedule's run
    if log.isEnabledFor(logging.INFO):
        log.info(
            "workflow %s started: %s",
            workflow_id,
            definition.name,
            extra={
                "action": "workflow.start",
                "workflow_id": workflow_id,
                "workflow": definition.name,
                "replay": recorded is not None,
                "trace_id": tracing.current_trace_id(),
            },
        )
    while True:
        steps = Checkpoints(
            services.store, services.executor_id, workflow_id, recorded, services.max_payload_bytes
        )
        ctx = WorkflowContext(services, run, workflow_id, steps, deadline_ms)
        try:
            return _run(services, definition, ctx, steps, input)
        except Fenced as fenced:
            log_fenced(workflow_id, services.executor_id, fenced.owner)
            return None  # not ours any more: the new owner runs (and finishes) it
        except Replay as replay:
            log.warning(
                "workflow %s: step %d was recorded by another execution too; replaying",
                workflow_id,
                replay.step_id,
                extra={"action": "workflow.replay", "workflow_id": workflow_id},
            )
            recorded = {s.step_id: s for s in services.store.list_steps(workflow_id)}


def _run(  # one execution of the body, from ``steps``' records
    services: Services,
    definition: WorkflowDef,
    ctx: WorkflowContext,
    steps: Checkpoints,
    input: object,
) -> records.Outcome | None:
    workflow_id = ctx.workflow_id
    try:
        with ctx:
            result = definition.fn(ctx, input) if definition.takes_input else definition.fn(ctx)
    except (Fenced, Replay):
        raise
    except Interrupted as stop:
        steps.settle()
        if stop.status is None:
            return None  # shutdown: left PENDING for recovery
        return services.store.get_workflow_outcome(workflow_id)
    except errors.SystemDatabaseUnavailableError:
        raise  # infrastructure, not the workflow: the runtime pauses it
    except Exception as exc:
        return finish(services, workflow_id, Status.ERROR, error=ctx.fatal or exc, steps=steps)
    if ctx.fatal is not None:  # the body swallowed a determinism error: still ERROR
        return finish(services, workflow_id, Status.ERROR, error=ctx.fatal, steps=steps)
    try:
        output = serialization.dumps(
            result,
            f"the result of workflow {definition.name!r} ({workflow_id!r})",
            services.max_payload_bytes,
        )
    except errors.SerializationError as exc:
        return finish(services, workflow_id, Status.ERROR, error=exc, steps=steps)
    return finish(services, workflow_id, Status.SUCCESS, output=output, steps=steps)


def finish(
    services: Services,
    workflow_id: str,
    status: Status,
    *,
    output: str | None = None,
    error: BaseException | None = None,
    steps: Checkpoints | None = None,
) -> records.Outcome | None:
    """Write the final status (only while PENDING and ours), with the checkpoint ``steps``
    still holds; the outcome awaiters get."""
    store, executor_id = services.store, services.executor_id
    error_text = serialization.encode_error(error) if error is not None else None
    traceback = attempts.format_traceback(error) if error is not None else None
    if steps is not None:
        written = steps.write_end(status.value, output, error_text, traceback)
    else:
        written = store.finish_workflow(
            workflow_id, status.value, executor_id, output, error_text, traceback
        )
    if written is not None:
        return written
    # No longer PENDING (a cancel landed first, and it wins), or no longer ours.
    outcome = store.get_workflow_outcome(workflow_id)
    if outcome is not None and outcome.executor_id != executor_id:
        log_fenced(workflow_id, executor_id, outcome.executor_id)
        return None
    return outcome
