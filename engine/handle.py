"""WorkflowHandle: a reference to one workflow, to await its result or read its status."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine import errors, serialization
from engine.records import FINAL_STATUSES, Status, WorkflowStatus

if TYPE_CHECKING:
    from engine.client import BaseClient

POLL_START_S = 0.005
POLL_MAX_S = 0.5


class WorkflowHandle:
    def __init__(self, workflow_id: str, owner: BaseClient) -> None:
        self.workflow_id = workflow_id
        self._owner = owner

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"

    def get_status(self) -> WorkflowStatus:
        status = self._owner.get_workflow_status(self.workflow_id)
        if status is None:
            raise errors.WorkflowNotFoundError(self.workflow_id)
        return status

    def get_result(self, timeout: float | None = None) -> Any:
        """The workflow's result; raises if it failed, was cancelled, or ``timeout`` passed.

        Inside a workflow of the same engine the wait is durable (recorded as a step)."""
        from engine import context

        ctx = context.current()
        if ctx is not None and ctx._engine is self._owner and not ctx._in_step:
            return ctx.await_workflow(self.workflow_id, timeout)
        row = self._owner._await_final(self.workflow_id, timeout)
        return outcome(self.workflow_id, row)


def outcome(workflow_id: str, row: Any) -> Any:
    """Interpret a final (status, output, error, recovery_attempts) row."""
    status = row["status"]
    if status == Status.SUCCESS:
        return serialization.loads(row["output"], f"the output of workflow {workflow_id!r}")
    if status == Status.ERROR:
        error = serialization.public_error(row["error"], f"the error of workflow {workflow_id!r}")
        assert error is not None
        raise errors.WorkflowFailedError(workflow_id, error["name"], error["message"])
    if status == Status.CANCELLED:
        raise errors.WorkflowCancelledError(workflow_id)
    if status == Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED:
        raise errors.MaxRecoveryAttemptsExceededError(workflow_id, row["recovery_attempts"])
    raise errors.EngineError(f"workflow {workflow_id!r} has unexpected status {status!r}")


def poll_until_final(read: Any, workflow_id: str, timeout: float | None) -> Any:
    """Poll ``read(workflow_id)`` with backoff until the row is final."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = POLL_START_S
    while True:
        row = read(workflow_id)
        if row is None:
            raise errors.WorkflowNotFoundError(workflow_id)
        if row["status"] in FINAL_STATUSES:
            return row
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"workflow {workflow_id!r} did not finish within {timeout} s "
                    f"(status {row['status']})"
                )
            delay = min(delay, remaining)
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_S)
