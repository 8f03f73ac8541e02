"""Reading a workflow's status and awaiting its outcome: what handles, clients and engines
share. A workflow executing in this process is awaited on its run (no polling); any other is
polled with backoff."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engine import attempts, errors, rows, serialization
from engine import signals as keys
from engine.loop import LoopEvent
from engine.records import FINAL_STATUSES, Status, WorkflowStatus
from engine.runs import Runs
from engine.store import Store, records
from engine.wakeups import Wakeups

POLL_START_S = 0.005
POLL_MAX_S = 0.5


def value_of(workflow_id: str, outcome: records.Outcome) -> Any:
    """A final outcome as the awaiter sees it: the result, or the matching error raised."""
    status = outcome.status
    if status == Status.SUCCESS:
        return serialization.loads(outcome.output, f"the output of workflow {workflow_id!r}")
    if status == Status.ERROR:
        what = f"the error of workflow {workflow_id!r}"
        error = serialization.public_error(outcome.error, what)
        assert error is not None
        raise errors.WorkflowFailedError(workflow_id, error["name"], error["message"])
    if status == Status.CANCELLED:
        raise errors.WorkflowCancelledError(workflow_id)
    if status == Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED:
        raise errors.MaxRecoveryAttemptsExceededError.set_aside(
            workflow_id, outcome.recovery_attempts
        )
    raise errors.EngineError(f"workflow {workflow_id!r} has unexpected status {status!r}")


class Results:
    def __init__(
        self, store: Store, runs: Runs | None = None, wakeups: Wakeups | None = None
    ) -> None:
        """``runs``: the executions of this process (an engine's), awaited without polling;
        ``wakeups``: their end is signalled there (async awaiters wait on it)."""
        self._store = store
        self._runs = runs
        self._wakeups = wakeups

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus | None:
        store = self._store.ready()
        row = store.get_workflow(workflow_id)
        if row is None:
            return None
        return attempts.with_tracebacks(store, [rows.workflow_status(row)])[0]

    def await_result(self, workflow_id: str, timeout: float | None) -> Any:
        return value_of(workflow_id, self.await_outcome(workflow_id, timeout))

    def await_outcome(self, workflow_id: str, timeout: float | None) -> records.Outcome:
        """The final outcome; ``TimeoutError`` when ``timeout`` seconds pass first."""
        run = self._runs.get(workflow_id) if self._runs is not None else None
        if run is not None:
            started = time.monotonic()
            if not run.done.wait(timeout):
                raise TimeoutError(f"workflow {workflow_id!r} did not finish within {timeout} s")
            if run.outcome is not None:
                return run.outcome
            if timeout is not None:  # it stopped without an end here: ask the database
                timeout = max(0.0, timeout - (time.monotonic() - started))
        return self._poll(workflow_id, timeout)

    def _poll(self, workflow_id: str, timeout: float | None) -> records.Outcome:
        store = self._store.ready()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_START_S
        while True:
            outcome = store.get_workflow_outcome(workflow_id)
            if outcome is None:
                raise errors.WorkflowNotFoundError(workflow_id)
            if outcome.status in FINAL_STATUSES:
                return outcome
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"workflow {workflow_id!r} did not finish within {timeout} s "
                        f"(status {outcome.status})"
                    )
                delay = min(delay, remaining)
            time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_S)

    async def get_workflow_status_async(self, workflow_id: str) -> WorkflowStatus | None:
        return await asyncio.to_thread(self.get_workflow_status, workflow_id)

    async def await_result_async(self, workflow_id: str, timeout: float | None) -> Any:
        return value_of(workflow_id, await self.await_outcome_async(workflow_id, timeout))

    async def await_outcome_async(self, workflow_id: str, timeout: float | None) -> records.Outcome:
        """``await_outcome`` holding no thread: a run here is awaited on its end signal, any
        other workflow read from the database on a thread, with backoff."""
        deadline = None if timeout is None else time.monotonic() + timeout
        run = self._runs.get(workflow_id) if self._runs is not None else None
        if run is not None and self._wakeups is not None:
            ended = LoopEvent(asyncio.get_running_loop())
            with self._wakeups.watch_with(ended, keys.done_key(workflow_id)):
                while not run.done.wait(0):  # watched before checked: no end is missed
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(
                            f"workflow {workflow_id!r} did not finish within {timeout} s"
                        )
                    try:
                        await asyncio.wait_for(ended.event.wait(), left)
                    except TimeoutError:
                        pass
                    ended.event.clear()
            if run.outcome is not None:
                return run.outcome
        delay = POLL_START_S
        while True:
            outcome = await asyncio.to_thread(self._store.ready().get_workflow_outcome, workflow_id)
            if outcome is None:
                raise errors.WorkflowNotFoundError(workflow_id)
            if outcome.status in FINAL_STATUSES:
                return outcome
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"workflow {workflow_id!r} did not finish within {timeout} s "
                        f"(status {outcome.status})"
                    )
                delay = min(delay, remaining)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_S)
