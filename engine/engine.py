"""Engine: registers workflows and steps, starts them, executes them, recovers them."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from engine import context, errors, handle, registry, serialization
from engine.client import INTERNAL_QUEUE, BaseClient
from engine.handle import WorkflowHandle
from engine.records import Status
from engine.store import base
from engine.threads import Latch, ThreadPool
from engine.timers import Timers

log = logging.getLogger("waymark.engine")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WORKFLOW_THREADS = 16


class _Run:
    """A workflow this process is executing (or has parked): in-process awaiters wait here."""

    __slots__ = ("deadline_armed", "done", "parked", "row", "stopped")

    def __init__(self) -> None:
        self.done = Latch()
        # The final (status, output, error, recovery_attempts), or None when the execution
        # stopped without a final status (shutdown, database lost): awaiters then ask the DB.
        self.row: Mapping[str, Any] | None = None
        self.stopped: str | None = None  # set by a cancel or a timeout seen in this process
        self.parked = False  # in a long durable sleep: no thread, a timer will resume it
        self.deadline_armed = False


class Engine(BaseClient):
    def __init__(
        self,
        app_name: str,
        database_url: str | None = None,
        *,
        application_version: str | None = None,
        executor_id: str | None = None,
        schema: str = "waymark",
        max_workflow_threads: int = DEFAULT_WORKFLOW_THREADS,
    ) -> None:
        if not app_name or not isinstance(app_name, str):
            raise ValueError("app_name must be a non-empty string")
        super().__init__(database_url or f"sqlite:///{app_name}.sqlite3", schema)
        self.app_name = app_name
        self._explicit_version = application_version
        self._executor_id = executor_id or "local"
        self._registry = registry.Registry()
        self._version: str | None = None
        self._runs: dict[str, _Run] = {}
        self._runs_lock = threading.Lock()
        self._pool = ThreadPool(max_workflow_threads, f"waymark-{app_name}")
        self._timers = Timers(f"waymark-timers-{app_name}")
        self._stopping = threading.Event()
        self._launched = False
        self._dispatcher: threading.Thread | None = None

    # -- registration ----------------------------------------------------------------------

    def workflow(
        self,
        name: str | None = None,
        *,
        schedule: str | None = None,
        max_recovery_attempts: int = 100,
    ) -> Callable[[F], F]:
        def register(fn: F) -> F:
            self.register_workflow(
                fn, name=name, schedule=schedule, max_recovery_attempts=max_recovery_attempts
            )
            return fn

        return register

    def register_workflow(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        schedule: str | None = None,
        max_recovery_attempts: int = 100,
    ) -> None:
        if schedule is not None:
            raise NotImplementedError(
                "scheduled workflows (schedule=) are not implemented in this version of "
                "Waymark yet; register the workflow without a schedule"
            )
        self._registry.add(fn, name, schedule, max_recovery_attempts)

    def step(
        self,
        name: str | None = None,
        *,
        max_attempts: int = 1,
        interval_seconds: float = 1.0,
        backoff_rate: float = 2.0,
    ) -> Callable[[F], F]:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if interval_seconds < 0 or backoff_rate <= 0:
            raise ValueError("interval_seconds must be >= 0 and backoff_rate > 0")

        def decorate(fn: F) -> F:
            def step_call(*args: Any, **kwargs: Any) -> Any:
                ctx = context.current()
                if ctx is None:  # outside a workflow: a plain call
                    return fn(*args, **kwargs)
                return ctx.run_step(step_call, *args, **kwargs)

            options = registry.StepOptions(
                name=name or fn.__qualname__,
                fn=fn,
                max_attempts=max_attempts,
                interval_seconds=interval_seconds,
                backoff_rate=backoff_rate,
            )
            setattr(step_call, registry.STEP_ATTR, options)
            step_call.__name__ = fn.__name__
            step_call.__qualname__ = fn.__qualname__
            step_call.__doc__ = fn.__doc__
            step_call.__module__ = fn.__module__
            step_call.__wrapped__ = fn  # type: ignore[attr-defined]
            return step_call  # type: ignore[return-value]

        return decorate

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> Any:
        raise NotImplementedError(
            "queues (engine.queue) are not implemented in this version of Waymark yet"
        )

    @property
    def application_version(self) -> str:
        if self._explicit_version is not None:
            return self._explicit_version
        if self._version is not None:
            return self._version
        return self._registry.version_hash()

    @property
    def executor_id(self) -> str:
        return self._executor_id

    def _freeze(self, reason: str) -> None:
        # From here on the version is fixed: workflows recorded under it must stay recoverable.
        if self._registry.frozen_reason is None:
            self._version = self.application_version
            self._registry.frozen_reason = reason

    # -- lifecycle -------------------------------------------------------------------------

    def launch(self) -> None:
        """Create/migrate the system tables, recover this executor's PENDING workflows, and
        start taking resumed and forked workflows handed over by clients."""
        if self._launched:
            return
        self._freeze("the engine has launched")
        store = self._ready()
        recovered = 0
        for workflow_id in store.recoverable_workflows(self.executor_id, self.application_version):
            recovered += self._recover(workflow_id)
        self._launched = True
        self._ensure_listener()
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name=f"waymark-dispatch-{self.app_name}", daemon=True
        )
        self._dispatcher.start()
        log.info(
            "engine launched",
            extra={
                "action": "engine.launch",
                "app": self.app_name,
                "recovered": recovered,
                "executor_id": self.executor_id,
                "version": self.application_version,
            },
        )

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop at the next step boundary; what has not finished stays PENDING for recovery."""
        self._stopping.set()
        self._closing.set()
        self._timers.stop()
        self._signals.fire("enq")  # the dispatcher: stop waiting now
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)
        for key in [f"stop:{wid}" for wid in list(self._runs)]:
            self._signals.fire(key)  # waiting workflows: stop waiting now
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._runs_lock:
                active = [run for run in self._runs.values() if not run.parked]
            if not active:
                break
            active[0].done.wait(max(0.0, deadline - time.monotonic()))
        with self._runs_lock:
            left = list(self._runs.values())
            self._runs.clear()
        for run in left:  # parked or stuck: their awaiters fall back to the database
            run.done.open()
        self._pool.stop()
        self._store.close()

    # -- starting and awaiting -------------------------------------------------------------

    def start_workflow(
        self,
        fn_or_name: Callable[..., Any] | str,
        input: Any = None,
        *,
        workflow_id: str | None = None,
        timeout: float | dt.timedelta | None = None,
        queue: Any = None,
        priority: int = 0,
        deduplication_id: str | None = None,
    ) -> WorkflowHandle:
        if queue is not None or priority or deduplication_id is not None:
            raise NotImplementedError("queues are not implemented in this version of Waymark yet")
        ctx = context.current()
        if ctx is not None and ctx._engine is self and not ctx._in_step:
            # Started from inside a workflow: a checkpointed child.
            return ctx.start_workflow(fn_or_name, input, workflow_id=workflow_id, timeout=timeout)
        definition = self._registry.resolve(fn_or_name)
        if workflow_id is None:
            workflow_id = str(uuid.uuid4())
        elif not isinstance(workflow_id, str) or not workflow_id.strip():
            raise ValueError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        timeout_ms = (
            int(context.seconds(timeout, "timeout") * 1000) if timeout is not None else None
        )
        # Serialize before anything is written: a bad input leaves no trace.
        inputs = serialization.encode_inputs(input, f"the input of workflow {definition.name!r}")
        if self._stopping.is_set():
            raise errors.EngineError(
                "the engine is shut down; create a new Engine to start workflows"
            )
        self._freeze("a workflow was already started")
        store = self._ready()
        now = base.now_ms()
        deadline = now + timeout_ms if timeout_ms is not None else None
        created = store.insert_workflow(
            workflow_id=workflow_id,
            status=Status.PENDING.value,
            name=definition.name,
            inputs=inputs,
            executor_id=self.executor_id,
            application_version=self.application_version,
            application_id=self.app_name,
            started_at=now,
            timeout_ms=timeout_ms,
            deadline_ms=deadline,
        )
        if created:
            # Run the body on the JSON form of the input, exactly what a recovery would see.
            self._submit(
                definition,
                workflow_id,
                serialization.decode_inputs(inputs, "input"),
                None,
                deadline,
            )
        else:
            existing = store.get_workflow(workflow_id)
            if existing is not None and existing["name"] != definition.name:
                raise errors.ConflictingWorkflowError(
                    workflow_id, existing["name"], definition.name
                )
        return WorkflowHandle(workflow_id, self)

    def _await_final(self, workflow_id: str, timeout: float | None) -> Any:
        run = self._runs.get(workflow_id)
        if run is not None:
            started = time.monotonic()
            if not run.done.wait(timeout):
                raise TimeoutError(f"workflow {workflow_id!r} did not finish within {timeout} s")
            if run.row is not None:
                return run.row
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - started))
        return super()._await_final(workflow_id, timeout)

    def send(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        ctx = context.current()
        if ctx is not None and ctx._engine is self and not ctx._in_step:
            ctx.send(destination_id, message, topic)
        else:
            super().send(destination_id, message, topic)

    def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        ctx = context.current()
        if ctx is not None and ctx._engine is self and not ctx._in_step:
            return ctx.get_event(workflow_id, key, timeout)
        return super().get_event(workflow_id, key, timeout)

    # -- execution -------------------------------------------------------------------------

    def _submit(
        self,
        definition: registry.WorkflowDef,
        workflow_id: str,
        input: Any,
        recorded: dict[int, Any] | None,
        deadline_ms: int | None,
        run: _Run | None = None,
    ) -> None:
        if run is None:
            run = _Run()
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
        run: _Run,
    ) -> None:
        row: Mapping[str, Any] | None = None
        try:
            row = self._run_body(definition, workflow_id, input, recorded, deadline_ms, run)
        except context.Parked as parked:
            run.parked = True
            self._timers.at(
                parked.wake_at, lambda: self._pool.submit(lambda: self._wake(workflow_id))
            )
            return
        except Exception:
            # The final write itself failed (database lost): the row stays PENDING and will
            # be recovered; awaiters fall back to reading the database.
            log.exception(
                "could not record the end of workflow %s",
                workflow_id,
                extra={"action": "workflow.finish_failed", "workflow_id": workflow_id},
            )
        self._end_run(workflow_id, run, row)

    def _end_run(self, workflow_id: str, run: _Run, row: Mapping[str, Any] | None) -> None:
        with self._runs_lock:
            if self._runs.get(workflow_id) is run:
                del self._runs[workflow_id]
        run.row = row
        run.done.open()
        self._signals.fire(f"done:{workflow_id}")

    def _run_body(
        self,
        definition: registry.WorkflowDef,
        workflow_id: str,
        input: Any,
        recorded: dict[int, Any] | None,
        deadline_ms: int | None,
        run: _Run,
    ) -> Mapping[str, Any] | None:
        ctx = context.WorkflowContext(self, run, workflow_id, recorded, deadline_ms)
        try:
            with ctx:
                result = definition.fn(ctx, input) if definition.takes_input else definition.fn(ctx)
        except context.Interrupted as stop:
            if stop.status is None:
                return None  # shutdown: left PENDING for recovery
            return self._store.get_workflow_outcome(workflow_id)
        except Exception as exc:
            return self._finish(
                workflow_id, Status.ERROR, error=serialization.encode_error(ctx.fatal or exc)
            )
        if ctx.fatal is not None:  # the body swallowed a determinism error: still ERROR
            return self._finish(
                workflow_id, Status.ERROR, error=serialization.encode_error(ctx.fatal)
            )
        try:
            output = serialization.dumps(
                result, f"the result of workflow {definition.name!r} ({workflow_id!r})"
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
        if self._store.finish_workflow(workflow_id, status.value, output=output, error=error):
            return {
                "status": status.value,
                "output": output,
                "error": error,
                "recovery_attempts": 0,
            }
        # No longer PENDING: a cancel landed first, and it wins.
        return self._store.get_workflow_outcome(workflow_id)

    def _wake(self, workflow_id: str) -> None:
        """A parked workflow's sleep is over: replay it from its checkpoints."""
        run = self._runs.get(workflow_id)
        if run is None or self._stopping.is_set():
            return  # ended meanwhile (cancelled), or shutting down: recovery takes it later
        run.parked = False
        row = self._store.get_workflow(workflow_id)
        if row is None or row["status"] != Status.PENDING:
            self._end_run(workflow_id, run, self._store.get_workflow_outcome(workflow_id))
            return
        self._run_row(row, run)

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
        super()._stopped(workflow_id, status)

    # -- recovery, resume, fork, hand-over -------------------------------------------------

    def _runs_version(self, version: str | None) -> bool:
        return version == self.application_version

    def _executor(self) -> str | None:
        return self.executor_id

    def _recover(self, workflow_id: str) -> int:
        """Resume one PENDING workflow of this executor from its checkpoints; 1 if resumed."""
        with self._runs_lock:
            if workflow_id in self._runs:
                return 0  # already executing here
        row = self._store.claim_recovery(workflow_id, self.executor_id)
        if row is None:
            return 0  # finished or taken meanwhile
        definition = self._registry.workflows.get(row["name"])
        if definition is not None and row["recovery_attempts"] > definition.max_recovery_attempts:
            self._store.set_status_if_pending(
                workflow_id,
                Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
                serialization.encode_error(
                    errors.MaxRecoveryAttemptsExceededError(
                        workflow_id, row["recovery_attempts"] - 1
                    )
                ),
            )
            return 0
        return 1 if self._run_row(row) else 0

    def _run_row(self, row: Any, run: _Run | None = None) -> bool:
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
        recorded = {step["function_id"]: step for step in self._store.list_steps(workflow_id)}
        self._submit(definition, workflow_id, input, recorded, deadline, run)
        return True

    def _fail(self, workflow_id: str, exc: Exception, run: _Run | None = None) -> None:
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

    def _dispatch_loop(self) -> None:
        """Take workflows that clients resumed or forked for this application version."""
        while not self._stopping.is_set():
            with self._signals.watch("enq") as woken:
                try:
                    claimed = self._store.claim_enqueued(
                        INTERNAL_QUEUE,
                        self.application_version,
                        self.executor_id,
                        self._pool.max_threads,
                    )
                    for row in claimed:
                        self._run_row(row)
                except Exception:
                    if self._stopping.is_set():
                        return
                    log.exception("dispatch failed", extra={"action": "dispatch.failed"})
                    claimed = []
                if not claimed:
                    woken.wait(max(self._poll_interval, 0.5))


__all__ = ["Engine", "handle"]
