"""Where a start, send or get_event made on an ``Engine`` goes, by where it is called from.

Outside a workflow, a start is admitted (``Admission``) and a send or get_event goes to
``Control``. Inside a workflow of this engine the same call is part of that workflow: a start
without ``queue=`` is a checkpointed child, a send happens exactly once, a get_event is
recorded, each through the current context. An async workflow calls the ``_async`` forms:
the sync form raises there, naming the async one (it would block the loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engine import errors
from engine.admission import Admission, StartOptions
from engine.async_context import current_async
from engine.context import current_context
from engine.control import Control
from engine.handle import WorkflowHandle
from engine.registry import Registry
from engine.results import Results
from engine.runtime import Runtime


class Routing:
    def __init__(
        self,
        registry: Registry,
        admission: Admission,
        runtime: Runtime,
        control: Control,
        results: Results,
    ) -> None:
        self._registry = registry
        self._admission = admission
        self._runtime = runtime
        self._control = control
        self._results = results  # identifies this engine's workflows: records_for(results)

    # -- starting ------------------------------------------------------------------------------

    def start(
        self, fn_or_name: Callable[..., Any] | str, input: Any, options: StartOptions
    ) -> WorkflowHandle:
        actx = current_async()
        if actx is not None and options.queue is None and actx.records_for(self._results):
            actx.start_workflow()  # raises: names start_workflow_async
        ctx = current_context()
        if ctx is not None and options.queue is None and ctx.records_for(self._results):
            options.refuse_queue_options()
            # Started from inside a workflow: a checkpointed child.
            return ctx.start_workflow(
                fn_or_name,
                input,
                workflow_id=options.workflow_id,
                timeout=options.timeout,
                attributes=options.attributes,
            )
        admitted = self._admission.start_with(self._admitted_name(fn_or_name), input, options)
        if admitted.run_here is not None:
            # Runs the body on the JSON form of the input, exactly what a recovery would see.
            self._runtime.run_claimed(admitted.run_here)
        return self._control.handle(admitted.workflow_id)

    async def start_async(
        self, fn_or_name: Callable[..., Any] | str, input: Any, options: StartOptions
    ) -> WorkflowHandle:
        actx = current_async()
        if actx is not None and options.queue is None and actx.records_for(self._results):
            options.refuse_queue_options()
            return await actx.start_workflow_async(
                fn_or_name,
                input,
                workflow_id=options.workflow_id,
                timeout=options.timeout,
                attributes=options.attributes,
            )
        name = self._admitted_name(fn_or_name)
        admitted = await self._admission.start_async(name, input, options)
        if admitted.run_here is not None:
            self._runtime.run_claimed(admitted.run_here)  # on this loop
        return self._control.handle(admitted.workflow_id)

    def _admitted_name(self, fn_or_name: Callable[..., Any] | str) -> str:
        """The registered name of the workflow to start; refused once the engine is shut down."""
        definition = self._registry.resolve(fn_or_name)
        if self._runtime.stopping.is_set():
            raise errors.EngineError(
                "the engine is shut down; create a new Engine to start workflows"
            )
        return definition.name

    # -- messages and events -------------------------------------------------------------------

    def send(self, destination_id: str, message: Any, topic: str | None) -> None:
        actx = current_async()
        if actx is not None and actx.records_for(self._results):
            actx.send()  # raises: names send_async
        ctx = current_context()
        if ctx is not None and ctx.records_for(self._results):
            ctx.send(destination_id, message, topic)  # from a workflow: exactly once, a step
        else:
            self._control.send(destination_id, message, topic)

    def get_event(self, workflow_id: str, key: str, timeout: float) -> Any:
        actx = current_async()
        if actx is not None and actx.records_for(self._results):
            actx.get_event()  # raises: names get_event_async
        ctx = current_context()
        if ctx is not None and ctx.records_for(self._results):
            return ctx.get_event(workflow_id, key, timeout)  # from a workflow: recorded
        return self._control.get_event(workflow_id, key, timeout)

    async def send_async(self, destination_id: str, message: Any, topic: str | None) -> None:
        actx = current_async()
        if actx is not None and actx.records_for(self._results):
            await actx.send_async(destination_id, message, topic)  # exactly once, a step
            return
        await asyncio.to_thread(self._control.send, destination_id, message, topic)

    async def get_event_async(self, workflow_id: str, key: str, timeout: float) -> Any:
        actx = current_async()
        if actx is not None and actx.records_for(self._results):
            return await actx.get_event_async(workflow_id, key, timeout)  # recorded
        return await asyncio.to_thread(self._control.get_event, workflow_id, key, timeout)
