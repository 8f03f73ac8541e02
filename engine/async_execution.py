"""One execution of an ``async def`` workflow body, on an event loop: the async twin of
``execution.run_body`` (same outcomes, same stops), its database calls on I/O threads."""

from __future__ import annotations

import datetime as dt
import logging

from engine import current, errors, execution, scheduler, serialization, tracing
from engine.async_context import AsyncWorkflowContext
from engine.checkpoints import Fenced, Interrupted
from engine.loop import Offload
from engine.records import Status
from engine.registry import WorkflowDef
from engine.runs import Run
from engine.services import Services
from engine.store import records

log = logging.getLogger("waymark.engine")


async def run_body(
    services: Services,
    offload: Offload,
    definition: WorkflowDef,
    workflow_id: str,
    input: object,
    recorded: dict[int, records.StepRow] | None,
    deadline_ms: int | None,
    run: Run,
) -> records.Outcome | None:
    """Run the body; the final outcome, or None when it ended without one here."""
    ctx = AsyncWorkflowContext(services, offload, run, workflow_id, recorded, deadline_ms)
    if definition.schedule is not None and isinstance(input, str):
        input = dt.datetime.fromisoformat(input)
    else:
        input = scheduler.tick_input(workflow_id, input)  # a managed schedule's run
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
    token = current.enter(ctx)
    try:
        body = definition.fn(ctx, input) if definition.takes_input else definition.fn(ctx)
        result = await body
    except Fenced as fenced:
        execution.log_fenced(workflow_id, services.executor_id, fenced.owner)
        return None
    except Interrupted as stop:
        if stop.status is None:
            return None
        return await offload.call(services.store.get_workflow_outcome, workflow_id)
    except errors.SystemDatabaseUnavailableError:
        raise
    except Exception as exc:
        return await _finish(services, offload, workflow_id, Status.ERROR, None, ctx.fatal or exc)
    finally:
        current.leave(token)
    if ctx.fatal is not None:
        return await _finish(services, offload, workflow_id, Status.ERROR, None, ctx.fatal)
    try:
        output = serialization.dumps(
            result,
            f"the result of workflow {definition.name!r} ({workflow_id!r})",
            services.max_payload_bytes,
        )
    except errors.SerializationError as exc:
        return await _finish(services, offload, workflow_id, Status.ERROR, None, exc)
    return await _finish(services, offload, workflow_id, Status.SUCCESS, output, None)


async def _finish(
    services: Services,
    offload: Offload,
    workflow_id: str,
    status: Status,
    output: str | None,
    error: BaseException | None,
) -> records.Outcome | None:
    """``execution.finish`` on the loop: the final write through the group commit."""
    if error is not None:  # a failure keeps its traceback: off the hot path, on an I/O thread

        def failed() -> records.Outcome | None:
            return execution.finish(services, workflow_id, status, output=output, error=error)

        return await offload.call(failed)
    written = await services.store.finish_workflow_async(
        workflow_id, status.value, services.executor_id, output, None
    )
    if written is not None:
        return written

    def settle() -> records.Outcome | None:  # not PENDING or not ours: as the sync path
        return execution.finish(services, workflow_id, status, output=output, error=error)

    return await offload.call(settle)
