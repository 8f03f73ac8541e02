"""Executing workflows in this process: runs, parking, deadlines, recovery of claimed rows.

A mixin of ``Engine`` (kept apart from registration and the public surface): everything here
runs on workflow threads, the timer thread or the worker loop.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine import context, errors, registry, serialization
from engine.records import Status
from engine.store import base
from engine.threads import Latch, ThreadPool
from engine.timers import Timers

if TYPE_CHECKING:
    from engine.signals import Signals

log = logging.getLogger("waymark.engine")

RESUME_AFTER_DB_LOSS_MS = 5000


class Run:
    """A workflow this process is executing (or has parked): in-process awaiters wait here."""

    __slots__ = ("deadline_armed", "done", "parked", "queue_name", "row", "stopped")

    def __init__(self, queue_name: str | None = None) -> None:
        self.queue_name = queue_name
        self.done = Latch()
        # The final (status, output, error, recovery_attempts), or None when the execution
        # stopped without a final status (shutdown, database lost): awaiters then ask the DB.
        self.row: Mapping[str, Any] | None = None
        self.stopped: str | None = None  # set by a cancel or a timeout seen in this process
        self.parked = False  # in a long durable sleep: no thread, a timer will resume it
        self.deadline_armed = False


class Execution:
    # Provided by Engine / BaseClient.
    _store: base.Store
    _signals: Signals
    _registry: registry.Registry
    _runs: dict[str, Run]
    _runs_lock: threading.Lock
    _pool: ThreadPool
    _timers: Timers
    _stopping: threading.Event
    max_payload_bytes: int

    @property
    def application_version(self) -> str:
        raise NotImplementedError

    @property
    def executor_id(self) -> str:
        raise NotImplementedError

    # -- running ---------------------------------------------------------------------------

    def _submit(
        self,
        definition: registry.WorkflowDef,
        workflow_id: str,
        input: Any,
        recorded: dict[int, Any] | None,
        deadline_ms: int | None,
        run: Run | None = None,
        queue_name: str | None = None,
    ) -> None:
        if run is None:
            run = Run(queue_name)
            with self._runs_lock:
                self._runs[workflow_id] = run
        if deadline_ms is not None and not run.deadline_armed:
            run.deadline_armed = True
            self._timers.at(deadline_ms, lambda: self._enforce_deadline(workflow_id))
        self._pool.submit(
            lambda: self._execute(definition, workflow_id, input, recorded, deadline_ms, run)
        )

    def _execute(
        self,
        definition: registry.WorkflowDef,
        workflow_id: str,
        input: Any,
        recorded: dict[int, Any] | None,
        deadline_ms: int | None,
        run: Run,
    ) -> None:
        row: Mapping[str, Any] | None = None
        try:
            row = self._run_body(definition, workflow_id, input, recorded, deadline_ms, run)
        except context.Parked as parked:
            run.parked = True
            self._signals.fire("enq")  # its thread is free for other work
            self._timers.at(
                parked.wake_at, lambda: self._pool.submit(lambda: self._wake(workflow_id))
            )
            return
        except errors.SystemDatabaseUnavailableError as exc:
            # Not the workflow's fault: it stays PENDING (nothing recorded it failed) and this
            # process resumes it from its checkpoints once the database answers again.
            log.error(
                "workflow %s paused: %s",
                workflow_id,
                exc,
                extra={"action": "workflow.db_lost", "workflow_id": workflow_id},
            )
            self._end_run(workflow_id, run, None)
            self._retry_recover_later(workflow_id)
            return
        except Exception:
            log.exception(
                "could not record the end of workflow %s",
                workflow_id,
                extra={"action": "workflow.finish_failed", "workflow_id": workflow_id},
            )
        self._end_run(workflow_id, run, row)

    def _retry_recover_later(self, workflow_id: str) -> None:
        def attempt() -> None:
            try:
                self._recover(workflow_id)
            except errors.SystemDatabaseUnavailableError:
                self._retry_recover_later(workflow_id)

        self._timers.at(base.now_ms() + RESUME_AFTER_DB_LOSS_MS, lambda: self._pool.submit(attempt))

    def _run_body(
        self,
        definition: registry.WorkflowDef,
        workflow_id: str,
        input: Any,
        recorded: dict[int, Any] | None,
        deadline_ms: int | None,
        run: Run,
    ) -> Mapping[str, Any] | None:
        ctx = context.WorkflowContext(self, run, workflow_id, recorded, deadline_ms)  # type: ignore[arg-type]
        if definition.schedule is not None and isinstance(input, str):
            input = dt.datetime.fromisoformat(input)  # stored as ISO text: hand back the tick
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
                },
            )
        try:
            with ctx:
                result = definition.fn(ctx, input) if definition.takes_input else definition.fn(ctx)
        except context.Fenced as fenced:
            self._fenced(workflow_id, fenced.owner)
            return None  # not ours any more: the new owner runs (and finishes) it
        except context.Interrupted as stop:
            if stop.status is None:
                return None  # shutdown: left PENDING for recovery
            return self._store.get_workflow_outcome(workflow_id)
        except errors.SystemDatabaseUnavailableError:
            raise  # infrastructure, not the workflow: see _execute
        except Exception as exc:
            error = serialization.encode_error(ctx.fatal or exc)
            return self._finish(workflow_id, Status.ERROR, error=error)
        if ctx.fatal is not None:  # the body swallowed a determinism error: still ERROR
            error = serialization.encode_error(ctx.fatal)
            return self._finish(workflow_id, Status.ERROR, error=error)
        try:
            output = serialization.dumps(
                result,
                f"the result of workflow {definition.name!r} ({workflow_id!r})",
                self.max_payload_bytes,
            )
        except errors.SerializationError as exc:
            return self._finish(workflow_id, Status.ERROR, error=serialization.encode_error(exc))
        return self._finish(workflow_id, Status.SUCCESS, output=output)

    def _finish(
        self,
        workflow_id: str,
        status: Status,
        *,
        output: str | None = None,
        error: str | None = None,
    ) -> Mapping[str, Any] | None:
        if self._store.finish_workflow(
            workflow_id, status.value, executor_id=self.executor_id, output=output, error=error
        ):
            return {
                "status": status.value,
                "output": output,
                "error": error,
                "recovery_attempts": 0,
            }
        # No longer PENDING (a cancel landed first, and it wins), or no longer ours.
        outcome = self._store.get_workflow_outcome(workflow_id)
        if outcome is not None and outcome["executor_id"] != self.executor_id:
            self._fenced(workflow_id, outcome["executor_id"])
            return None
        return outcome

    def _fenced(self, workflow_id: str, owner: str | None) -> None:
        log.warning(
            "workflow %s was handed to %s (this executor was taken for dead): stopped here",
            workflow_id,
            owner or "another executor",
            extra={
                "action": "workflow.fenced",
                "workflow_id": workflow_id,
                "executor_id": self.executor_id,
                "owner": owner,
            },
        )

    def _end_run(self, workflow_id: str, run: Run, row: Mapping[str, Any] | None) -> None:
        with self._runs_lock:
            if self._runs.get(workflow_id) is run:
                del self._runs[workflow_id]
        run.row = row
        run.done.open()
        self._signals.fire(f"done:{workflow_id}")
        self._signals.fire("enq")  # a thread (and maybe a queue slot) is free again
        if row is not None and log.isEnabledFor(logging.INFO):
            log.info(
                "workflow %s finished: %s",
                workflow_id,
                row["status"],
                extra={
                    "action": "workflow.finish",
                    "workflow_id": workflow_id,
                    "status": row["status"],
                },
            )

    def _wake(self, workflow_id: str) -> None:
        """A parked workflow's sleep is over: replay it from its checkpoints."""
        run = self._runs.get(workflow_id)
        if run is None or self._stopping.is_set():
            return  # ended meanwhile (cancelled), or shutting down: recovery takes it later
        run.parked = False
        row = self._store.get_workflow(workflow_id)
        if row is not None and row["executor_id"] != self.executor_id:
            self._fenced(workflow_id, row["executor_id"])  # taken over while it slept
            self._end_run(workflow_id, run, None)
            return
        if row is None or row["status"] != Status.PENDING:
            self._end_run(workflow_id, run, self._store.get_workflow_outcome(workflow_id))
            return
        self._run_row(row, run)

    def _free_capacity(self) -> int:
        """Workflow threads not taken by running (not parked) workflows."""
        with self._runs_lock:
            busy = sum(1 for run in self._runs.values() if not run.parked)
        return max(0, self._pool.max_threads - busy)

    def _running_on(self, queue_name: str) -> int:
        with self._runs_lock:
            return sum(1 for run in self._runs.values() if run.queue_name == queue_name)

    # -- cancellation and deadlines --------------------------------------------------------

    def _enforce_deadline(self, workflow_id: str) -> None:
        error = serialization.encode_error(errors.WorkflowCancelledError(workflow_id))
        if self._store.cancel_past_deadline(workflow_id, error):
            log.info(
                "workflow %s timed out",
                workflow_id,
                extra={"action": "workflow.timeout", "workflow_id": workflow_id},
            )
            self._stopped(workflow_id, Status.CANCELLED)

    def _stopped(self, workflow_id: str, status: str) -> None:
        run = self._runs.get(workflow_id)
        if run is not None:
            run.stopped = status
            if run.parked:  # no thread to notice it: end the run here
                self._end_run(workflow_id, run, self._store.get_workflow_outcome(workflow_id))
        self._signals.fire(f"stop:{workflow_id}")

    # -- recovery and claimed rows ---------------------------------------------------------

    def _recover(self, workflow_id: str) -> int:
        """Resume one PENDING workflow of this executor from its checkpoints; 1 if resumed."""
        with self._runs_lock:
            if workflow_id in self._runs:
                return 0  # already executing here
        row = self._store.claim_recovery(workflow_id, self.executor_id)
        if row is None:
            return 0  # finished or taken meanwhile
        return 1 if self._run_row(row) else 0

    def _run_row(self, row: Any, run: Run | None = None) -> bool:
        """Execute a PENDING row claimed by this process, replaying its recorded steps."""
        workflow_id, name = row["workflow_uuid"], row["name"]
        definition = self._registry.workflows.get(name)
        if definition is None:
            self._fail(
                workflow_id,
                errors.EngineError(
                    f"unknown workflow {name!r} in this application version "
                    f"({self.application_version}); register it, or run a worker of the version "
                    "that started it"
                ),
                run,
            )
            return False
        if row["recovery_attempts"] > definition.max_recovery_attempts:
            self._set_aside(workflow_id, row["recovery_attempts"], run)
            return False
        deadline = row["workflow_deadline_epoch_ms"]
        if deadline is not None and deadline <= base.now_ms():
            self._enforce_deadline(workflow_id)  # it timed out while nobody ran it
            if run is not None:
                self._end_run(workflow_id, run, self._store.get_workflow_outcome(workflow_id))
            return False
        try:
            input = serialization.decode_inputs(
                row["inputs"], f"the input of workflow {workflow_id!r}"
            )
        except errors.SerializationError as exc:
            self._fail(workflow_id, exc, run)
            return False
        # A freshly claimed row says it has no steps yet: nothing to read back for replay.
        fresh = "fresh" in row.keys() and row["fresh"]  # noqa: SIM118 - sqlite3.Row: "in" tests values
        recorded = (
            None
            if fresh
            else {step["function_id"]: step for step in self._store.list_steps(workflow_id)}
        )
        self._submit(definition, workflow_id, input, recorded, deadline, run, row["queue_name"])
        return True

    def _set_aside(self, workflow_id: str, attempts: int, run: Run | None) -> None:
        error = errors.MaxRecoveryAttemptsExceededError(workflow_id, attempts - 1)
        self._store.set_status_if_pending(
            workflow_id,
            Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
            serialization.encode_error(error),
        )
        log.error("%s", error, extra={"action": "workflow.dead_letter", "workflow_id": workflow_id})
        if run is not None:
            self._end_run(workflow_id, run, self._store.get_workflow_outcome(workflow_id))

    def _fail(self, workflow_id: str, exc: Exception, run: Run | None = None) -> None:
        self._store.set_status_if_pending(
            workflow_id, Status.ERROR.value, serialization.encode_error(exc)
        )
        log.error(
            "workflow %s cannot run: %s",
            workflow_id,
            exc,
            extra={"action": "workflow.unrunnable", "workflow_id": workflow_id},
        )
        if run is not None:
            self._end_run(workflow_id, run, self._store.get_workflow_outcome(workflow_id))
