"""Inspection and control of workflows: what ``Client`` and ``Engine`` both offer.

A client holds a ``Control`` with no local executor: what it resumes or forks is enqueued for
any worker of its version. An engine's Control has its runtime as the local executor, which
runs resumed and forked workflows of its own version here, and stops its own executions at
once when they are cancelled.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from engine import attempts, errors, rows, serialization, streams
from engine import attributes as attrs
from engine import signals as keys
from engine.admission import UNCHANGED, Admission, Admitted
from engine.handle import WorkflowHandle
from engine.queues import Queue
from engine.records import AttemptInfo, Status, StepInfo, WorkflowStatus
from engine.results import Results
from engine.services import check_topic
from engine.store import Store, records
from engine.wakeups import Wakeups


class LocalExecutor(Protocol):
    """What Control needs from a process that executes workflows (an engine's runtime)."""

    def run_claimed(self, row: records.WorkflowRow) -> bool:
        """Run a row created or put back PENDING under this executor."""

    def stopped(self, workflow_id: str, status: str) -> None:
        """The workflow was cancelled: stop its execution here, if any."""


class Control:
    def __init__(
        self,
        store: Store,
        wakeups: Wakeups,
        admission: Admission,
        results: Results,
        *,
        max_payload_bytes: int,
        local: LocalExecutor | None = None,
    ) -> None:
        self._store = store
        self._wakeups = wakeups
        self._admission = admission
        self._results = results
        self._max_payload_bytes = max_payload_bytes
        self._local = local

    def handle(self, workflow_id: str) -> WorkflowHandle:
        return WorkflowHandle(workflow_id, self._results)

    def _started(self, admitted: Admitted) -> WorkflowHandle:
        if admitted.run_here is not None and self._local is not None:
            self._local.run_claimed(admitted.run_here)
        return self.handle(admitted.workflow_id)

    # -- inspection ----------------------------------------------------------------------------

    def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle:
        if self._store.ready().get_workflow_outcome(workflow_id) is None:
            raise errors.WorkflowNotFoundError(workflow_id)
        return self.handle(workflow_id)

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus | None:
        return self._results.get_workflow_status(workflow_id)

    def list_workflows(
        self,
        *,
        status: str | Sequence[str] | None = None,
        name: str | None = None,
        workflow_id_prefix: str | None = None,
        queue_name: str | None = None,
        application_version: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
        attributes: dict[str, Any] | None = None,
    ) -> list[WorkflowStatus]:
        """``attributes``: only workflows whose attributes hold every given pair (equality,
        through an index on both databases)."""
        wanted = attrs.check(attributes, "attributes filter") if attributes is not None else {}
        statuses = [status] if isinstance(status, str) else status
        for value in statuses or ():
            if value not in Status.__members__:
                raise ValueError(
                    f"unknown status {value!r}; use one of {', '.join(Status.__members__)}"
                )
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        store = self._store.ready()
        found = store.list_workflows(
            statuses=[str(s) for s in statuses] if statuses is not None else None,
            name=name,
            id_prefix=workflow_id_prefix,
            queue_name=queue_name,
            application_version=application_version,
            created_after=rows.to_ms(created_after, "created_after"),
            created_before=rows.to_ms(created_before, "created_before"),
            limit=limit,
            offset=offset,
            newest_first=newest_first,
            attributes=store.attribute_filter(wanted) if wanted else None,
        )
        return attempts.with_tracebacks(self._store, [rows.workflow_status(row) for row in found])

    def list_steps(self, workflow_id: str) -> list[StepInfo]:
        store = self._store.ready()
        return attempts.with_attempts(store, workflow_id, store.list_steps(workflow_id))

    def list_attempts(self, workflow_id: str, step_id: int) -> list[AttemptInfo]:
        """The failed attempts of a step, numbered from 1 (empty when none failed)."""
        return attempts.list_attempts(self._store.ready(), workflow_id, step_id)

    # -- control -------------------------------------------------------------------------------

    def cancel_workflow(self, workflow_id: str, *, cancel_children: bool = False) -> None:
        """Cancel an unfinished workflow; it stops at its next step boundary. With
        ``cancel_children`` every unfinished descendant is cancelled too.

        Cancelling a finished workflow does nothing; an unknown ID raises.
        """
        self._cancel_one(workflow_id)
        if not cancel_children:
            return
        # The parent first, so it starts no more children; then every descendant, finished
        # ones walked through too (a finished child may have an unfinished detached child).
        # A child created by the parent's step in flight is found by the walk: its row is
        # written together with that step, before the parent sees it was cancelled.
        store = self._store.ready()
        seen = {workflow_id}
        pending = store.list_child_ids(workflow_id)
        while pending:
            child = pending.pop()
            if child in seen:
                continue
            seen.add(child)
            self._cancel_one(child)
            pending.extend(store.list_child_ids(child))

    def _cancel_one(self, workflow_id: str) -> None:
        store = self._store.ready()
        if store.cancel_workflow(workflow_id):
            if self._local is not None:
                self._local.stopped(workflow_id, Status.CANCELLED)
            else:
                self._wakeups.fire(keys.stop_key(workflow_id))
        elif store.get_workflow_outcome(workflow_id) is None:
            raise errors.WorkflowNotFoundError(workflow_id)

    def resume_workflow(
        self, workflow_id: str, *, queue: Queue | str | None = None
    ) -> WorkflowHandle:
        """Continue a CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED or ENQUEUED workflow from its
        last completed step; a second resume (or one of a running workflow) does nothing. A
        workflow that was on a queue resumes on it (its limits apply) unless ``queue`` names
        another."""
        return self._started(self._admission.resume(workflow_id, queue=queue))

    def fork_workflow(
        self,
        workflow_id: str,
        start_step: int,
        *,
        new_workflow_id: str | None = None,
        application_version: str | None = None,
        queue: Queue | str | None = None,
        input: Any = UNCHANGED,
    ) -> WorkflowHandle:
        """A new workflow with the steps before ``start_step`` copied (not re-run); it runs
        from there. ``start_step=1`` restarts from scratch. ``queue``: it waits on that queue;
        ``input``: it runs with a new input (the copied steps are kept all the same)."""
        admitted = self._admission.fork(
            workflow_id,
            start_step,
            new_workflow_id=new_workflow_id,
            application_version=application_version,
            queue=queue,
            input=input,
        )
        return self._started(admitted)

    # -- streams ---------------------------------------------------------------------------------

    def read_stream(
        self, workflow_id: str, key: str, *, offset: int = 0, timeout: float | None = 60.0
    ) -> Iterator[Any]:
        """A workflow's stream ``key`` from ``offset``, waiting for new values; ends when it
        is closed or the workflow is final; ``TimeoutError`` after ``timeout`` s of nothing."""
        return streams.read(
            self._store, self._wakeups, workflow_id, key, offset=offset, timeout=timeout
        )

    def list_streams(self, workflow_id: str) -> list[tuple[str, int, bool]]:
        """A workflow's streams: (key, values, closed)."""
        return [
            (row["key"], int(row["items"] or 0), bool(row["closed"]))
            for row in self._store.ready().streams.list_streams(workflow_id)
        ]

    # -- messages and events -------------------------------------------------------------------

    def send(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        """Send ``message`` to a workflow; it receives it with ``ctx.recv(topic)``."""
        check_topic(topic)
        text = serialization.dumps(
            message, f"the message to workflow {destination_id!r}", self._max_payload_bytes
        )
        if not self._store.ready().messages.send_message(
            destination_id, text, topic, str(uuid.uuid4())
        ):
            raise errors.WorkflowNotFoundError(destination_id)
        self._wakeups.fire(keys.message_key(destination_id))

    def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        """The value a workflow published under ``key``, waiting up to ``timeout`` seconds for
        it; None on timeout."""
        store = self._store.ready()

        def check() -> tuple[Any] | None:
            value = store.messages.get_event(workflow_id, key)
            if value is None:
                return None
            return (serialization.loads(value, f"event {key!r} of {workflow_id!r}"),)

        found = self._wakeups.wait_for(timeout, (keys.event_key(workflow_id),), check)
        return found[0] if found is not None else None
