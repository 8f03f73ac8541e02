"""The runtime: runs workflows in this process.

It owns the workflow threads (a bounded pool), the timer thread (parked sleepers' wake-ups,
deadlines, resuming after a database outage), the stop flag and the registry of runs. It takes
rows this process may execute (created here, claimed from a queue, recovered, resumed, handed
over by Celery) and runs each from its checkpoints; everything here runs on workflow threads,
the timer thread or the worker loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from engine import async_execution, clock, dispatch, errors, execution, observe, serialization
from engine import signals as keys
from engine.admission import Admission
from engine.context import Parked
from engine.loop import EventLoopThread, Offload, running_loop
from engine.parking import Waker
from engine.records import Status
from engine.registry import Registry, WorkflowDef
from engine.results import Results
from engine.runs import Run, Runs
from engine.services import Services
from engine.store import Store, records
from engine.threads import ThreadPool
from engine.timers import Timers
from engine.wakeups import Wakeups

log = logging.getLogger("waymark.engine")

RESUME_AFTER_DB_LOSS_MS = 5000
# Recovery claims this many workflows per transaction (W5: 1,000 claims were 1,000 commits in
# a row, most of the recovery's time).
RECOVERY_CLAIMS = 100


class Runtime:
    def __init__(
        self,
        store: Store,
        wakeups: Wakeups,
        registry: Registry,
        admission: Admission,
        results: Results,
        runs: Runs,
        *,
        executor_id: str,
        name: str,
        max_threads: int,
        max_payload_bytes: int,
    ) -> None:
        self._store = store
        self._wakeups = wakeups
        self._registry = registry
        self._runs = runs
        self.executor_id = executor_id
        self._pool = ThreadPool(max_threads, f"waymark-{name}")
        self._timers = Timers(f"waymark-timers-{name}")
        # Async workflows: the engine's own loop (recovered, queued, scheduled ones) and the
        # I/O threads that carry their database calls.
        self._loop = EventLoopThread(f"waymark-loop-{name}")
        self.offload = Offload(f"waymark-io-{name}")
        self._tasks: set[asyncio.Future[None]] = set()
        self.stopping = threading.Event()
        self.services = Services(
            store=store,
            wakeups=wakeups,
            admission=admission,
            registry=registry,
            results=results,
            executor_id=executor_id,
            stopping=self.stopping,
            blocking=self._pool.blocking,
            run_here=self.run_claimed,
            max_payload_bytes=max_payload_bytes,
        )

    # -- what the worker loop and tests count ----------------------------------------------------

    def free_capacity(self) -> int:
        """Workflow threads not taken by running (not parked) workflows."""
        return max(0, self._pool.max_threads - self._runs.busy())

    def running_on(self, queue_name: str) -> int:
        return self._runs.running_on(queue_name)

    def parked(self) -> int:
        """Workflows in a long durable sleep here (holding no thread)."""
        return self._runs.parked()

    def active(self) -> int:
        """Workflows executing (or parked) here."""
        return len(self._runs)

    def running(self, workflow_id: str) -> bool:
        """Whether an execution here holds the workflow (running or parked)."""
        return workflow_id in self._runs

    def io_threads(self) -> int:
        """I/O threads started so far for async workflows' database calls."""
        return self.offload.threads

    def threads(self) -> int:
        """Workflow threads started so far."""
        return self._pool.size

    # -- taking rows to run ----------------------------------------------------------------------

    def recover(self, workflow_id: str) -> int:
        """Resume one PENDING workflow of this executor from its checkpoints; 1 if resumed."""
        return self.resume([workflow_id])

    def recover_all(self) -> int:
        """Resume every PENDING workflow of this executor and version (at launch)."""
        version = self._registry.application_version
        return self.resume(self._store.recoverable_workflows(self.executor_id, version))

    def resume(self, workflow_ids: list[str]) -> int:
        """Resume PENDING workflows of this executor (those not running here) from their
        checkpoints, claiming them ``RECOVERY_CLAIMS`` per transaction; how many resumed."""
        if self.stopping.is_set():
            return 0  # shutting down: recovery, here or elsewhere, resumes them later
        step = RECOVERY_CLAIMS
        return sum(
            self._resume(workflow_ids[i : i + step]) for i in range(0, len(workflow_ids), step)
        )

    def _resume(self, workflow_ids: list[str]) -> int:
        with self._runs.claiming(workflow_ids) as ids:  # not running nor being claimed here
            resumed = 0
            for row in self._store.claim_recoveries(ids, self.executor_id):
                if row is not None:  # None: finished or taken meanwhile
                    self._store.metrics.recovered()
                    resumed += 1 if self.run_claimed(row) else 0
            return resumed

    def take_over(self, workflow_id: str, dispatcher_id: str) -> None:
        """Run a workflow that the dispatcher ``dispatcher_id`` claimed and handed to this
        process, and wait until it ends or parks. Does nothing when it was taken already."""
        version = self._registry.application_version
        with self._runs.claiming([workflow_id]) as free:
            if free:  # else it runs here already (a task delivered twice): wait for it
                row = self._store.take_over(workflow_id, self.executor_id, dispatcher_id, version)
                if row is None:
                    dispatch.explain_untaken(
                        self._store.get_workflow(workflow_id), dispatcher_id, version
                    )
                    return
                if not self.run_claimed(row):
                    return
        run = self._runs.get(workflow_id)
        while run is not None and not run.parked and not run.done.wait(0.5):
            pass

    def run_claimed(self, row: records.WorkflowRow, run: Run | None = None) -> bool:
        """Execute a PENDING row this process holds, replaying its recorded steps."""
        workflow_id, name = row.workflow_id, row.name
        definition = self._registry.workflows.get(name)
        if definition is None:
            self._fail(
                workflow_id,
                errors.EngineError(
                    f"unknown workflow {name!r} in this application version "
                    f"({self._registry.application_version}); register it, or run a worker of "
                    "the version that started it"
                ),
                run,
            )
            return False
        if row.recovery_attempts > definition.max_recovery_attempts:
            self._set_aside(workflow_id, row.recovery_attempts, run)
            return False
        deadline = row.deadline_ms
        if deadline is not None and deadline <= clock.now_ms():
            self.enforce_deadline(workflow_id)  # it timed out while nobody ran it
            if run is not None:
                self._end(workflow_id, run, self._store.get_workflow_outcome(workflow_id))
            return False
        try:
            input = serialization.decode_inputs(
                row.inputs, f"the input of workflow {workflow_id!r}"
            )
        except errors.SerializationError as exc:
            self._fail(workflow_id, exc, run)
            return False
        # A fresh row has no steps yet: nothing to read back for replay.
        recorded = (
            None if row.fresh else {s.step_id: s for s in self._store.list_steps(workflow_id)}
        )
        if run is None:
            # A row admitted here never replaces a run: if one exists, the orphan sweep
            # adopted the row while this start was late, and that run carries it.
            run = self._runs.begin(workflow_id, row.queue_name, replace=not row.admitted)
            if run is None:
                return False
            run.name, run.created_at = name, row.created_at
            observe.claimed(self._store.metrics, row)
        if deadline is not None and not run.deadline_armed:
            run.deadline_armed = True
            self._timers.at(deadline, lambda: self.enforce_deadline(workflow_id))
        span = observe.execution_span(self._store, row, self.executor_id)
        if definition.is_async:
            self._start_async(definition, workflow_id, input, recorded, deadline, run, span)
            return True
        self._pool.submit(
            lambda: self._execute(definition, workflow_id, input, recorded, deadline, run, span)
        )
        return True

    def _start_async(
        self,
        definition: WorkflowDef,
        workflow_id: str,
        input: object,
        recorded: dict[int, records.StepRow] | None,
        deadline: int | None,
        run: Run,
        span: contextlib.AbstractContextManager[object],
    ) -> None:
        """On the loop running here (started from application code or an async parent), else
        on the engine's own loop thread."""
        coro = self._execute_async(definition, workflow_id, input, recorded, deadline, run, span)
        loop = running_loop()
        if loop is None:
            self._loop.submit(coro)
            return
        task = loop.create_task(coro)
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def _execute_async(
        self,
        definition: WorkflowDef,
        workflow_id: str,
        input: object,
        recorded: dict[int, records.StepRow] | None,
        deadline: int | None,
        run: Run,
        span: contextlib.AbstractContextManager[object],
    ) -> None:
        outcome: records.Outcome | None = None
        try:
            with span:  # entered in this task: its steps' spans are its children
                outcome = await async_execution.run_body(
                    self.services, self.offload, definition, workflow_id, input, recorded,
                    deadline, run,
                )  # fmt: skip
        except errors.SystemDatabaseUnavailableError as exc:
            log.error(
                "workflow %s paused: %s",
                workflow_id,
                exc,
                extra={"action": "workflow.db_lost", "workflow_id": workflow_id},
            )
            self._end(workflow_id, run, None)
            self._retry_recover_later(workflow_id)
            return
        except asyncio.CancelledError:
            # The application's loop ended under it: left PENDING, recovery resumes it.
            self._end(workflow_id, run, None)
            raise
        except Exception:
            log.exception(
                "could not record the end of workflow %s",
                workflow_id,
                extra={"action": "workflow.finish_failed", "workflow_id": workflow_id},
            )
        self._end(workflow_id, run, outcome)

    # -- executing ---------------------------------------------------------------------------------

    def _execute(
        self,
        definition: WorkflowDef,
        workflow_id: str,
        input: object,
        recorded: dict[int, records.StepRow] | None,
        deadline: int | None,
        run: Run,
        span: contextlib.AbstractContextManager[object],
    ) -> None:
        outcome: records.Outcome | None = None
        try:
            with span:
                outcome = execution.run_body(
                    self.services, definition, workflow_id, input, recorded, deadline, run
                )
        except Parked as parked:
            run.parked = True
            self._wakeups.fire(keys.FREED)  # its thread is free for other work
            waker = Waker(workflow_id, lambda: self._wake(workflow_id), self._pool.submit)
            waker.arm(
                self._wakeups, self._timers, self._store, parked.wake_at, parked.keys,
                parked.ready, parked.poll,
            )  # fmt: skip
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
            self._end(workflow_id, run, None)
            self._retry_recover_later(workflow_id)
            return
        except Exception:
            log.exception(
                "could not record the end of workflow %s",
                workflow_id,
                extra={"action": "workflow.finish_failed", "workflow_id": workflow_id},
            )
        self._end(workflow_id, run, outcome)

    def _retry_recover_later(self, workflow_id: str) -> None:
        def attempt() -> None:
            try:
                self.recover(workflow_id)
            except errors.SystemDatabaseUnavailableError:
                self._retry_recover_later(workflow_id)

        self._timers.at(
            clock.now_ms() + RESUME_AFTER_DB_LOSS_MS, lambda: self._pool.submit(attempt)
        )

    def _end(self, workflow_id: str, run: Run, outcome: records.Outcome | None) -> None:
        if not self._runs.end(workflow_id, run):
            return  # ended already: its awaiters have its outcome, its end is counted
        run.outcome = outcome
        run.done.open()
        self._wakeups.fire(keys.done_key(workflow_id))
        self._wakeups.fire(keys.FREED)  # a thread (and maybe a queue slot) is free again
        if outcome is not None:
            observe.finished(self._store.metrics, run, outcome)
        if outcome is not None and log.isEnabledFor(logging.INFO):
            log.info(
                "workflow %s finished: %s",
                workflow_id,
                outcome.status,
                extra={
                    "action": "workflow.finish",
                    "workflow_id": workflow_id,
                    "status": outcome.status,
                },
            )

    def _wake(self, workflow_id: str) -> None:
        """A parked workflow's sleep is over: replay it from its checkpoints."""
        run = self._runs.get(workflow_id)
        if run is None or self.stopping.is_set():
            return  # ended meanwhile (cancelled), or shutting down: recovery takes it later
        run.parked = False
        row = self._store.get_workflow(workflow_id)
        if row is not None and row.executor_id != self.executor_id:
            execution.log_fenced(workflow_id, self.executor_id, row.executor_id)
            self._end(workflow_id, run, None)  # taken over while it slept
            return
        if row is None or row.status != Status.PENDING:
            self._end(workflow_id, run, self._store.get_workflow_outcome(workflow_id))
            return
        # Parking recorded what it waits on; waking writes nothing more (ten thousand wake-ups
        # at once must not cost ten thousand commits): the record names the step that ends the
        # wait, so once the replay records that step readers know it is over
        # (waits.is_current); a new park overwrites it, and the final write clears it.
        self.run_claimed(row, run)

    # -- cancellation and deadlines --------------------------------------------------------

    def enforce_deadline(self, workflow_id: str) -> None:
        error = serialization.encode_error(errors.WorkflowCancelledError(workflow_id))
        if self._store.cancel_past_deadline(workflow_id, error):
            log.info(
                "workflow %s timed out",
                workflow_id,
                extra={"action": "workflow.timeout", "workflow_id": workflow_id},
            )
            self.stopped(workflow_id, Status.CANCELLED)

    def stopped(self, workflow_id: str, status: str) -> None:
        """The workflow was cancelled or timed out: its execution here stops at its next step
        boundary (a waiting one is woken; a parked one ends now)."""
        run = self._runs.get(workflow_id)
        if run is not None:
            run.stopped = status
            if run.parked:  # no thread to notice it: end the run here
                self._end(workflow_id, run, self._store.get_workflow_outcome(workflow_id))
        self._wakeups.fire(keys.stop_key(workflow_id))

    def _set_aside(self, workflow_id: str, attempts: int, run: Run | None) -> None:
        error = errors.MaxRecoveryAttemptsExceededError.set_aside(workflow_id, attempts)
        self._store.set_status_if_pending(
            workflow_id,
            Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
            serialization.encode_error(error),
        )
        log.error("%s", error, extra={"action": "workflow.dead_letter", "workflow_id": workflow_id})
        if run is not None:
            self._end(workflow_id, run, self._store.get_workflow_outcome(workflow_id))

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
            self._end(workflow_id, run, self._store.get_workflow_outcome(workflow_id))

    # -- stopping ------------------------------------------------------------------------------

    def stop(self, timeout: float) -> None:
        """Stop at the next step boundary; what has not finished stays PENDING for recovery.
        Waits up to ``timeout`` seconds for running workflows to reach one."""
        self.stopping.set()
        self._timers.stop()
        for workflow_id in self._runs.ids():
            self._wakeups.fire(keys.stop_key(workflow_id))  # waiting workflows: stop waiting now
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = self._runs.first_active()
            if active is None:
                break
            active.done.wait(max(0.0, deadline - time.monotonic()))
        for run in self._runs.drain():  # parked or stuck: their awaiters fall back to the DB
            run.done.open()
        self._pool.stop()
        self._loop.stop()
        self.offload.stop()
