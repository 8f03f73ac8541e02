"""Engine: registers workflows, steps and queues; starts, awaits and schedules workflows.

Execution itself (runs, parking, deadlines, recovery) lives in ``execution.py``; the
background loop of a launched engine (heartbeats, dead executors, queues) in ``worker.py``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from engine import context, errors, queues, registry, scheduler, serialization
from engine.client import BaseClient
from engine.execution import Execution, Run
from engine.handle import WorkflowHandle
from engine.queues import Queue
from engine.records import Status
from engine.store import base
from engine.threads import ThreadPool
from engine.timers import Timers
from engine.worker import Worker

log = logging.getLogger("waymark.engine")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WORKFLOW_THREADS = 16


class Engine(Execution, BaseClient):
    def __init__(
        self,
        app_name: str,
        database_url: str | None = None,
        *,
        application_version: str | None = None,
        executor_id: str | None = None,
        schema: str = "waymark",
        max_workflow_threads: int = DEFAULT_WORKFLOW_THREADS,
        queues: Sequence[str] | None = None,
        heartbeat_timeout: float = 30.0,
        max_payload_bytes: int = serialization.DEFAULT_LIMIT,
        db_retry_seconds: float | None = None,
    ) -> None:
        """``queues``: names of the declared queues this engine takes work from (None: all);
        ``heartbeat_timeout``: seconds without a heartbeat after which an executor's
        unfinished workflows are handed to the live ones; ``db_retry_seconds``: how long an
        operation retries while the database is unreachable before the workflows it holds
        pause (default WAYMARK_DB_RETRY_SECONDS or 60)."""
        if not app_name or not isinstance(app_name, str):
            raise ValueError("app_name must be a non-empty string")
        if heartbeat_timeout <= 0:
            raise ValueError(f"heartbeat_timeout must be > 0 seconds, got {heartbeat_timeout!r}")
        super().__init__(database_url or f"sqlite:///{app_name}.sqlite3", schema, db_retry_seconds)
        self.app_name = app_name
        self.max_payload_bytes = max_payload_bytes
        self._explicit_version = application_version
        self._executor_id = executor_id or "local"
        self._registry = registry.Registry()
        self._version: str | None = None
        self._runs: dict[str, Run] = {}
        self._runs_lock = threading.Lock()
        self._pool = ThreadPool(max_workflow_threads, f"waymark-{app_name}")
        self._timers = Timers(f"waymark-timers-{app_name}")
        self._stopping = threading.Event()
        self._launched = False
        self._queues: dict[str, Queue] = {}
        self._served = list(queues) if queues is not None else None
        self._heartbeat_timeout = heartbeat_timeout
        self._worker: Worker | None = None
        self._scheduler: scheduler.Scheduler | None = None
        # What the worker loop does with a claimed workflow: run it here, or (Celery
        # dispatch) hand it to another process.
        self.dispatch: Callable[[Any], object] = self._run_row
        # False: heartbeat and recover dead executors, but claim nothing from queues (a
        # Celery worker process runs only what its tasks hand it).
        self.serve_queues = True

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
        label = name or registry.default_name(fn)
        if schedule is not None:
            scheduler.validate(schedule, label)
        definition = self._registry.add(fn, name, schedule, max_recovery_attempts)
        if schedule is not None and not definition.takes_input:
            del self._registry.workflows[definition.name]
            raise errors.EngineError(
                f"scheduled workflow {label!r} must accept the tick time: def wf(ctx, tick)"
            )

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
    ) -> Queue:
        """Declare a queue (before ``launch()``); pass it, or its name, as ``queue=``."""
        if self._launched:
            raise errors.EngineError(f"declare queue {name!r} before launch()")
        if name in self._queues:
            raise errors.EngineError(f"queue {name!r} is already declared")
        limit = (int(rate_limit[0]), float(rate_limit[1])) if rate_limit is not None else None
        declared = Queue(name, concurrency, worker_concurrency, limit)
        self._queues[name] = declared
        return declared

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
        """Create/migrate the system tables, recover this executor's PENDING workflows, then
        start the worker loop (heartbeat, dead executors, queues) and the scheduler."""
        if self._launched:
            return
        unknown = set(self._served or ()) - set(self._queues)
        if unknown:
            raise errors.EngineError(
                f"queues {sorted(unknown)} were never declared with engine.queue()"
            )
        self._freeze("the engine has launched")
        store = self._ready()
        recovered = 0
        for workflow_id in store.recoverable_workflows(self.executor_id, self.application_version):
            recovered += self._recover(workflow_id)
        self._launched = True
        self._ensure_listener()
        served = [
            q for q in self._queues.values() if self._served is None or q.name in self._served
        ]
        self._worker = Worker(self, served, self._heartbeat_timeout, self._dispatch_row)
        self._worker.start()
        self._scheduler = scheduler.Scheduler(
            {d.name: d.schedule for d in self._registry.workflows.values() if d.schedule},
            self._start_tick,
            self._stopping,
        )
        self._scheduler.launch()
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

    def _dispatch_row(self, row: Any) -> None:
        self.dispatch(row)

    def run_forever(self, stop: threading.Event | None = None, grace: float = 10.0) -> None:
        """Launch, serve until ``stop`` is set, then drain: take no new work, let running
        steps finish for up to ``grace`` seconds, and leave what is unfinished PENDING for
        recovery. Wire ``stop`` to SIGTERM/SIGINT (``manage.py runworker`` does)."""
        self.launch()
        (stop or threading.Event()).wait()
        log.info("draining", extra={"action": "engine.drain", "executor_id": self.executor_id})
        self.shutdown(timeout=grace)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop at the next step boundary; what has not finished stays PENDING for recovery."""
        self._stopping.set()
        self._closing.set()
        self._timers.stop()
        self._signals.fire("enq")  # the worker loop: stop waiting now
        for part in (self._worker, self._scheduler):
            if part is not None:
                part.join(timeout)
        for workflow_id in list(self._runs):
            self._signals.fire(f"stop:{workflow_id}")  # waiting workflows: stop waiting now
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
        queue: Queue | str | None = None,
        priority: int = 0,
        deduplication_id: str | None = None,
        delay: float | dt.timedelta | None = None,
    ) -> WorkflowHandle:
        """Start a workflow; returns once it is durably recorded. With ``queue`` it waits on
        that queue (``priority``: lower first; ``deduplication_id``: refused while another
        workflow holding it waits or runs; ``delay``: not before that many seconds)."""
        if queue is None and (priority or deduplication_id is not None or delay is not None):
            raise ValueError("priority, deduplication_id and delay need a queue=")
        ctx = context.current()
        if ctx is not None and ctx._engine is self and not ctx._in_step and queue is None:
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
        queue_name = queues.queue_name(queue) if queue is not None else None
        if queue_name is not None and queue_name not in self._queues:
            raise errors.EngineError(
                f"unknown queue {queue_name!r}; declare it with engine.queue()"
            )
        # Serialize before anything is written: a bad input leaves no trace.
        inputs = serialization.encode_inputs(
            input, f"the input of workflow {definition.name!r}", self.max_payload_bytes
        )
        if self._stopping.is_set():
            raise errors.EngineError(
                "the engine is shut down; create a new Engine to start workflows"
            )
        self._freeze("a workflow was already started")
        store = self._ready()
        if queue_name is not None:
            enqueue(
                store,
                workflow_id,
                definition.name,
                inputs,
                queue_name,
                timeout_ms,
                priority,
                deduplication_id,
                queues.delay_ms(delay),
                self.application_version,
                self.app_name,
            )
            self._signals.fire("enq")
            return WorkflowHandle(workflow_id, self)
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

    def backfill(self, name: str, start: dt.datetime, end: dt.datetime) -> list[WorkflowHandle]:
        """Start the scheduled workflow ``name`` for every tick in [start, end); ticks that
        already ran are not run again (each tick has one workflow ID)."""
        definition = self._registry.resolve(name)
        if definition.schedule is None:
            raise errors.EngineError(f"workflow {definition.name!r} has no schedule to backfill")
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware datetimes")
        handles = []
        for tick in scheduler.ticks(definition.schedule, start - dt.timedelta(microseconds=1)):
            if tick >= end:
                break
            handles.append(self._start_tick(definition.name, tick))
        return handles

    def _start_tick(self, name: str, tick: dt.datetime) -> WorkflowHandle:
        return self.start_workflow(name, tick, workflow_id=scheduler.tick_workflow_id(name, tick))

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

    def take_over(self, workflow_id: str, dispatcher_id: str) -> None:
        """Run a workflow that the dispatcher ``dispatcher_id`` claimed and handed to this
        process, and wait until it ends or parks. Does nothing when it was taken already."""
        self.launch()
        row = self._store.take_over(workflow_id, self.executor_id, dispatcher_id)
        if row is None or not self._run_row(row):
            return
        run = self._runs.get(workflow_id)
        while run is not None and not run.parked and not run.done.wait(0.5):
            pass

    # -- what BaseClient leaves to an executing process ------------------------------------

    def _runs_version(self, version: str | None) -> bool:
        return version == self.application_version

    def _executor(self) -> str | None:
        return self.executor_id


def enqueue(
    store: base.Store,
    workflow_id: str,
    name: str,
    inputs: str,
    queue_name: str,
    timeout_ms: int | None,
    priority: int,
    deduplication_id: str | None,
    delay_ms: int | None,
    version: str | None,
    app_name: str | None,
) -> None:
    """Record a workflow waiting on a queue (DELAYED first if ``delay_ms``)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, got {priority!r}")
    now = base.now_ms()
    created = store.enqueue_workflow(
        workflow_id=workflow_id,
        name=name,
        inputs=inputs,
        queue_name=queue_name,
        status=Status.DELAYED if delay_ms else Status.ENQUEUED,
        application_version=version,
        application_id=app_name,
        timeout_ms=timeout_ms,
        priority=priority,
        deduplication_id=deduplication_id,
        delay_until=now + delay_ms if delay_ms else None,
        parent_workflow_id=None,
        deadline_ms=None,
    )
    if not created:
        existing = store.get_workflow(workflow_id)
        if existing is not None and existing["name"] != name:
            raise errors.ConflictingWorkflowError(workflow_id, existing["name"], name)
