"""Which workflow, if any, is running on this thread.

The context variable lives here, below both the workflow context and the handle: a handle
asks it whether a ``get_result`` must be a durable, recorded wait of the running workflow.
"""

from __future__ import annotations

import contextvars
from typing import Any, Protocol


class Running(Protocol):
    """What a handle needs from the workflow running on this thread."""

    def records_for(self, source: object) -> bool:
        """Whether calls through ``source`` (an engine's results) are this workflow's to
        record: the same engine, and not from inside a step."""

    def await_workflow(self, workflow_id: str, timeout: float | None) -> Any:
        """Await another workflow's result as a recorded step."""

    def await_workflow_async(self, workflow_id: str, timeout: float | None) -> Any:
        """The same from an async workflow (an awaitable; its step ID is taken at the call)."""


_running: contextvars.ContextVar[Running | None] = contextvars.ContextVar(
    "waymark_workflow_context", default=None
)


def get() -> Running | None:
    return _running.get()


def enter(ctx: Running) -> contextvars.Token[Running | None]:
    return _running.set(ctx)


def leave(token: contextvars.Token[Running | None]) -> None:
    _running.reset(token)
