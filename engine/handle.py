"""WorkflowHandle: a reference to one workflow, to await its result or read its status."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from engine import current, errors
from engine.records import WorkflowStatus


class Source(Protocol):
    """Where a handle reads its workflow (an engine's or a client's results)."""

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus | None: ...

    def await_result(self, workflow_id: str, timeout: float | None) -> Any: ...

    async def get_workflow_status_async(self, workflow_id: str) -> WorkflowStatus | None: ...

    async def await_result_async(self, workflow_id: str, timeout: float | None) -> Any: ...


class WorkflowHandle:
    def __init__(self, workflow_id: str, source: Source) -> None:
        self.workflow_id = workflow_id
        self._source = source

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"

    def get_status(self) -> WorkflowStatus:
        status = self._source.get_workflow_status(self.workflow_id)
        if status is None:
            raise errors.WorkflowNotFoundError(self.workflow_id)
        return status

    def get_result(self, timeout: float | None = None) -> Any:
        """The workflow's result; raises if it failed, was cancelled, or ``timeout`` passed.

        Inside a workflow of the same engine the wait is durable (recorded as a step)."""
        running = current.get()
        if running is not None and running.records_for(self._source):
            return running.await_workflow(self.workflow_id, timeout)
        return self._source.await_result(self.workflow_id, timeout)

    async def get_status_async(self) -> WorkflowStatus:
        status = await self._source.get_workflow_status_async(self.workflow_id)
        if status is None:
            raise errors.WorkflowNotFoundError(self.workflow_id)
        return status

    def get_result_async(self, timeout: float | None = None) -> Awaitable[Any]:
        """``get_result`` without blocking the event loop. Inside an async workflow of the
        same engine the wait is durable (recorded as a step; its ID taken at this call)."""
        running = current.get()
        if running is not None and running.records_for(self._source):
            awaitable: Awaitable[Any] = running.await_workflow_async(self.workflow_id, timeout)
            return awaitable
        return self._source.await_result_async(self.workflow_id, timeout)
