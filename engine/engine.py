"""Engine: registers workflows, steps and queues; starts, awaits and schedules workflows.

The engine is a facade over parts it owns: ``engine.assembly`` builds and wires them at
construction (the store, wake-ups, registry, admission, runtime, control, queue control,
schedules, routing) and, at launch, the ``Worker`` loop and the ``Scheduler``. Each public
method here is the contract (API.md); its logic lives in the part it delegates to.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar

from engine import (
    admission,
    assembly,
    errors,
    queue_control,
    registry,
    scheduler,
    serialization,
    steps,
    streams,
)
from engine import debounce as debouncing
from engine import metrics as metrics_mod
from engine import signals as keys
from engine.admission import StartOptions
from engine.dispatch import Dispatcher
from engine.handle import WorkflowHandle
from engine.queues import Queue
from engine.records import AttemptInfo, QueueInfo, ScheduleInfo, StepInfo, WorkflowStatus
from engine.worker import Worker

log = logging.getLogger("waymark.engine")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WORKFLOW_THREADS = 16


class Engine:
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
        dispatcher: Dispatcher | None = None,
        claim_queues: bool = True,
        metrics: metrics_mod.NullMetrics | bool = True,
    ) -> None:
        """``queues``: names of the declared queues this engine takes work from (None: all);
        ``heartbeat_timeout``: seconds without a heartbeat after which an executor's
        unfinished workflows are handed to the live ones; ``db_retry_seconds``: how long an
        operation retries while the database is unreachable before the workflows it holds
        pause (default WAYMARK_DB_RETRY_SECONDS or 60); ``dispatcher``: hand the workflows
        claimed from queues to other processes instead of running them here
        (engine.dispatch); ``claim_queues=False``: heartbeat and recover dead executors, but
        claim nothing from queues (a process that runs only what a dispatcher hands it, on a
        small connection budget: one writer, LISTEN only once a workflow waits);
        ``metrics``: where this engine reports (engine.metrics; True: the process-wide
        ``Metrics`` on ``engine.metrics.registry()``, False: nowhere)."""
        if not app_name or not isinstance(app_name, str):
            raise ValueError("app_name must be a non-empty string")
        if heartbeat_timeout <= 0:
            raise ValueError(f"heartbeat_timeout must be > 0 seconds, got {heartbeat_timeout!r}")
        self.app_name = app_name
        self.max_payload_bytes = max_payload_bytes
        self._executor_id = executor_id or "local"
        self._loop_options = assembly.LoopOptions(
            served=list(queues) if queues is not None else None,
            heartbeat_timeout=heartbeat_timeout,
            claim_queues=claim_queues,
            dispatcher=dispatcher,
        )
        self._parts = assembly.assemble(
            app_name,
            database_url or f"sqlite:///{app_name}.sqlite3",
            schema=schema,
            application_version=application_version,
            executor_id=self._executor_id,
            max_workflow_threads=max_workflow_threads,
            max_payload_bytes=max_payload_bytes,
            db_retry_seconds=db_retry_seconds,
            one_writer=not claim_queues,
            metrics=metrics,
            start_scheduled=self._start_scheduled,
        )
        self.metrics: metrics_mod.NullMetrics = self._parts.metrics
        self.lifecycle = self._parts.lifecycle
        self.runtime = self._parts.runtime
        self._launched = False
        self._worker: Worker | None = None
        self._scheduler: scheduler.Scheduler | None = None

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
            scheduler.validate(schedule, name or registry.default_name(fn))
        self._parts.registry.add(fn, name, schedule, max_recovery_attempts)

    def step(
        self,
        name: str | None = None,
        *,
        max_attempts: int = 1,
        interval_seconds: float = 1.0,
        backoff_rate: float = 2.0,
        timeout: float | None = None,
    ) -> Callable[[F], F]:
        """``timeout``: seconds one attempt may run before it fails with ``StepTimeoutError``."""
        options = {"interval_seconds": interval_seconds, "backoff_rate": backoff_rate}
        return steps.decorator(
            self._parts.results, name, max_attempts=max_attempts, timeout=timeout, **options
        )

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        partition_concurrency: int | None = None,
    ) -> Queue:
        """Declare a queue (before ``launch()``); pass it, or its name, as ``queue=``."""
        if self._launched:
            raise errors.EngineError(f"declare queue {name!r} before launch()")
        limit = (int(rate_limit[0]), float(rate_limit[1])) if rate_limit is not None else None
        declared = Queue(name, concurrency, worker_concurrency, limit, partition_concurrency)
        self._parts.registry.declare_queue(declared)
        return declared

    @property
    def application_version(self) -> str:
        return self._parts.registry.application_version

    @property
    def executor_id(self) -> str:
        return self._executor_id

    # -- lifecycle -------------------------------------------------------------------------

    def launch(self) -> None:
        """Create/migrate the system tables, recover this executor's PENDING workflows, then
        start the worker loop (heartbeat, dead executors, queues) and the scheduler."""
        if self._launched:
            return
        assembly.check_served(self._parts, self._loop_options)
        self._parts.registry.freeze("the engine has launched")
        self._parts.store.ready()
        recovered = self.runtime.recover_all()
        self._launched = True
        if self._loop_options.claim_queues:
            # Others' enqueues and finishes wake the claiming loop. A process that only runs
            # handed-over work LISTENs once a workflow here waits (lazily): a connection less.
            self._parts.wakeups.listen()
        self._worker, self._scheduler = assembly.start_loops(
            self._parts, self._loop_options, self.executor_id, self._start_scheduled
        )
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
        self.runtime.stopping.set()
        self._parts.wakeups.fire(keys.ENQUEUED)  # the worker loop: stop waiting now
        self._parts.wakeups.fire(keys.SCHEDULES)  # the scheduler too
        for part in (self._worker, self._scheduler):
            if part is not None:
                part.join(timeout)
        self.runtime.stop(timeout)
        self._parts.wakeups.close()
        self._parts.store.close()

    def take_over(self, workflow_id: str, dispatcher_id: str) -> None:
        """Run a workflow that the dispatcher ``dispatcher_id`` claimed and handed to this
        process, and wait until it ends or parks. Does nothing when it was taken already."""
        self.launch()
        try:
            self.runtime.take_over(workflow_id, dispatcher_id)
        finally:  # a queue slot may be free: the dispatcher (another process) refills it now
            self._parts.store.announce_freed()

    # -- starting --------------------------------------------------------------------------

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
        deduplication_policy: str = "reject",
        delay: float | dt.timedelta | None = None,
        attributes: dict[str, Any] | None = None,
        partition_key: str | None = None,
    ) -> WorkflowHandle:
        """Start a workflow; returns once it is durably recorded. With ``queue`` it waits on
        that queue (``priority``: lower first; ``deduplication_id``: refused while another
        workflow holding it waits or runs; ``delay``: not before that many seconds)."""
        options = StartOptions(
            workflow_id=workflow_id,
            timeout=timeout,
            queue=queue,
            priority=priority,
            deduplication_id=deduplication_id,
            deduplication_policy=deduplication_policy,
            delay=delay,
            attributes=attributes,
            partition_key=partition_key,
        )
        return self._parts.routing.start(fn_or_name, input, options)

    async def start_workflow_async(
        self,
        fn_or_name: Callable[..., Any] | str,
        input: Any = None,
        *,
        workflow_id: str | None = None,
        timeout: float | dt.timedelta | None = None,
        queue: Queue | str | None = None,
        priority: int = 0,
        deduplication_id: str | None = None,
        deduplication_policy: str = "reject",
        delay: float | dt.timedelta | None = None,
        attributes: dict[str, Any] | None = None,
        partition_key: str | None = None,
    ) -> WorkflowHandle:
        """``start_workflow`` from async code (the same options), without blocking the loop.
        An async workflow started here runs on the running loop; inside an async workflow
        it is a child."""
        options = StartOptions(
            workflow_id=workflow_id,
            timeout=timeout,
            queue=queue,
            priority=priority,
            deduplication_id=deduplication_id,
            deduplication_policy=deduplication_policy,
            delay=delay,
            attributes=attributes,
            partition_key=partition_key,
        )
        return await self._parts.routing.start_async(fn_or_name, input, options)

    def debouncer(
        self,
        fn_or_name: Callable[..., Any] | str,
        *,
        period: float | dt.timedelta,
        max_wait: float | dt.timedelta | None = None,
        queue: Queue | str | None = None,
    ) -> debouncing.Debouncer:
        """A ``Debouncer`` of a registered workflow (engine/debounce.py): ``debounce(key,
        input)`` starts one workflow per burst, with the latest input."""
        return debouncing.Debouncer(
            self._parts.registry.resolve(fn_or_name).name,
            period=period,
            max_wait=max_wait,
            queue=queue,
            admission=self._parts.admission,
            handle=self._parts.control.handle,
            refuse_here=debouncing.engine_guard(self._parts.results, self.runtime.stopping),
        )

    def backfill(self, name: str, start: dt.datetime, end: dt.datetime) -> list[WorkflowHandle]:
        """Start the scheduled workflow ``name`` for every tick in [start, end); ticks that
        already ran are not run again (each tick has one workflow ID)."""
        definition = self._parts.registry.resolve(name)
        if definition.schedule is None:
            raise errors.EngineError(f"workflow {definition.name!r} has no schedule to backfill")
        return [
            self._start_scheduled(
                definition.name, tick, scheduler.tick_workflow_id(definition.name, tick), None
            )
            for tick in scheduler.ticks_between(definition.schedule, start, end)
        ]

    def _start_scheduled(
        self, workflow_name: str, input: Any, workflow_id: str, queue: str | None
    ) -> WorkflowHandle:
        return self.start_workflow(workflow_name, input, workflow_id=workflow_id, queue=queue)

    # -- managed schedules (engine.schedules; the same on a Client) --------------------------

    def create_schedule(
        self,
        name: str,
        workflow: Callable[..., Any] | str,
        cron: str,
        *,
        timezone: str = "UTC",
        queue: Queue | str | None = None,
    ) -> None:
        """Create the schedule ``name`` (or update it; a pause holds): ``workflow`` runs at
        every tick of ``cron`` read in ``timezone``, with the tick time as its input."""
        queue_name = queue.name if isinstance(queue, Queue) else queue
        self._parts.schedules.create(name, workflow, cron, timezone, queue_name)

    def pause_schedule(self, name: str) -> None:
        self._parts.schedules.pause(name)

    def resume_schedule(self, name: str) -> None:
        self._parts.schedules.resume(name)

    def delete_schedule(self, name: str) -> None:
        self._parts.schedules.delete(name)

    def trigger_schedule(self, name: str) -> WorkflowHandle:
        return self._parts.schedules.trigger(name)

    def backfill_schedule(
        self, name: str, start: dt.datetime, end: dt.datetime
    ) -> list[WorkflowHandle]:
        return self._parts.schedules.backfill(name, start, end)

    def list_schedules(self) -> list[ScheduleInfo]:
        return self._parts.schedules.list()

    # -- inspection and control (Control, shared with Client) ------------------------------

    def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle:
        return self._parts.control.retrieve_workflow(workflow_id)

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus | None:
        return self._parts.control.get_workflow_status(workflow_id)

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
        return self._parts.control.list_workflows(
            status=status,
            name=name,
            workflow_id_prefix=workflow_id_prefix,
            queue_name=queue_name,
            application_version=application_version,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
            attributes=attributes,
        )

    def list_steps(self, workflow_id: str) -> list[StepInfo]:
        return self._parts.control.list_steps(workflow_id)

    def list_attempts(self, workflow_id: str, step_id: int) -> list[AttemptInfo]:
        return self._parts.control.list_attempts(workflow_id, step_id)

    def cancel_workflow(self, workflow_id: str, *, cancel_children: bool = False) -> None:
        self._parts.control.cancel_workflow(workflow_id, cancel_children=cancel_children)

    # -- queue control (durable, seen by every worker) --------------------------------------

    def pause_queue(self, name: str) -> None:
        """A paused queue starts nothing (on any worker); what runs continues."""
        self._parts.queue_control.pause(name)

    def resume_queue(self, name: str) -> None:
        self._parts.queue_control.resume(name)

    def set_queue_limits(
        self,
        name: str,
        *,
        concurrency: int | None = queue_control.UNSET,
        worker_concurrency: int | None = queue_control.UNSET,
        rate_limit: tuple[int, float] | None = queue_control.UNSET,
    ) -> None:
        """Change only the limits given (None: no limit); every worker applies them."""
        self._parts.queue_control.set_limits(
            name,
            concurrency=concurrency,
            worker_concurrency=worker_concurrency,
            rate_limit=rate_limit,
        )

    def list_queues(self) -> list[QueueInfo]:
        return self._parts.queue_control.list_queues()

    def read_stream(
        self, workflow_id: str, key: str, *, offset: int = 0, timeout: float | None = 60.0
    ) -> Iterator[Any]:
        """Yield the values of a workflow's stream ``key`` from ``offset``, waiting for new
        ones; ends when the stream is closed or the workflow is final; ``TimeoutError`` when
        ``timeout`` seconds pass with nothing new."""
        return self._parts.control.read_stream(workflow_id, key, offset=offset, timeout=timeout)

    def read_stream_async(
        self, workflow_id: str, key: str, *, offset: int = 0, timeout: float | None = 60.0
    ) -> AsyncIterator[Any]:
        """``read_stream`` as an async iterator (``async for value in ...``)."""
        return streams.read_async(
            self.read_stream(workflow_id, key, offset=offset, timeout=timeout)
        )

    def list_streams(self, workflow_id: str) -> list[tuple[str, int, bool]]:
        return self._parts.control.list_streams(workflow_id)

    def resume_workflow(
        self, workflow_id: str, *, queue: Queue | str | None = None
    ) -> WorkflowHandle:
        return self._parts.control.resume_workflow(workflow_id, queue=queue)

    def fork_workflow(
        self,
        workflow_id: str,
        start_step: int,
        *,
        new_workflow_id: str | None = None,
        application_version: str | None = None,
        queue: Queue | str | None = None,
        input: Any = admission.UNCHANGED,
    ) -> WorkflowHandle:
        return self._parts.control.fork_workflow(
            workflow_id,
            start_step,
            new_workflow_id=new_workflow_id,
            application_version=application_version,
            queue=queue,
            input=input,
        )

    def send(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        self._parts.routing.send(destination_id, message, topic)

    def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        return self._parts.routing.get_event(workflow_id, key, timeout)

    async def send_async(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        await self._parts.routing.send_async(destination_id, message, topic)

    async def get_event_async(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        return await self._parts.routing.get_event_async(workflow_id, key, timeout)

    # -- data lifecycle (engine.lifecycle) ---------------------------------------------------------

    def delete_workflow(self, workflow_id: str, *, delete_children: bool = False) -> None:
        self.lifecycle.delete_workflow(workflow_id, delete_children=delete_children)

    def export_workflow(self, workflow_id: str, *, children: bool = False) -> dict[str, Any]:
        return self.lifecycle.export_workflow(workflow_id, children=children)

    def import_workflow(self, data: dict[str, Any]) -> str:
        return self.lifecycle.import_workflow(data)

    def garbage_collect(
        self, *, older_than: float | dt.timedelta, keep_last: int | None = None
    ) -> int:
        return self.lifecycle.garbage_collect(older_than=older_than, keep_last=keep_last)
