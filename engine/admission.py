"""Admission: the one place that creates workflow rows, and every check made before one is.

A workflow row comes into being in one of six ways, all here: started to run in this process,
enqueued (by an engine, or by a client by name), started as a child from inside a workflow
(atomically with the parent's step), forked from another, opened by a debounce (the burst's
row, engine/debounce.py); resuming puts an existing row back to work. The checks (a valid
ID, a valid timeout, a declared queue, queue options only with a queue, an input that
serializes, the same ID never reused for another workflow name) are made once, here, before
anything is written.

A row created PENDING under this process's executor comes back as ``Admitted.run_here``: the
caller runs it now (engine.Runtime). Every other one waits on a queue for any worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from engine import attributes as attrs
from engine import clock, errors, partitions, queues, serialization, signals, tracing
from engine.queues import INTERNAL_QUEUE, Queue
from engine.records import Status
from engine.registry import Registry
from engine.store import Store, records
from engine.wakeups import Wakeups


class _Unchanged:
    """The default of ``fork_workflow(input=...)``: the fork keeps the original's input."""

    def __repr__(self) -> str:
        return "<unchanged>"


UNCHANGED: Any = _Unchanged()


@dataclass(frozen=True)
class Admitted:
    workflow_id: str
    # Created PENDING under this executor: run it now. None: it existed already (the ID is an
    # idempotency key), or it waits on a queue.
    run_here: records.WorkflowRow | None = None


@dataclass(frozen=True)
class Parent:
    """The workflow starting a child, at the step that starts it."""

    workflow_id: str
    step_id: int
    deadline_ms: int | None
    executor_id: str


@dataclass(frozen=True)
class StartOptions:
    """The options of ``Engine.start_workflow`` (and its async form), as given."""

    workflow_id: str | None = None
    timeout: float | dt.timedelta | None = None
    queue: Queue | str | None = None
    priority: int = 0
    deduplication_id: str | None = None
    deduplication_policy: str = "reject"
    delay: float | dt.timedelta | None = None
    attributes: dict[str, Any] | None = None
    partition_key: str | None = None

    def refuse_queue_options(self) -> None:
        """A child (no queue) takes none of the options that only mean something on a queue."""
        if (
            self.priority
            or self.deduplication_id is not None
            or self.delay is not None
            or self.partition_key
        ):
            raise ValueError("priority, deduplication_id, delay and partition_key need a queue=")


def seconds(value: float | dt.timedelta, what: str) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{what} must be a number of seconds >= 0 or a timedelta, got {value!r}")
    return float(value)


def timeout_ms(timeout: float | dt.timedelta | None) -> int | None:
    return int(seconds(timeout, "timeout") * 1000) if timeout is not None else None


def check_workflow_id(workflow_id: Any, what: str = "workflow_id") -> str:
    if workflow_id is None:
        return str(uuid.uuid4())
    if not isinstance(workflow_id, str) or not workflow_id.strip():
        raise ValueError(f"{what} must be a non-empty string, got {workflow_id!r}")
    return workflow_id


def queue_name(queue: Queue | str | None) -> str | None:
    return queue.name if isinstance(queue, Queue) else queue


DEDUPLICATION_POLICIES = ("reject", "return-existing")


class Admission:
    def __init__(
        self,
        store: Store,
        wakeups: Wakeups,
        max_payload_bytes: int,
        *,
        registry: Registry | None = None,
        executor_id: str | None = None,
        app_name: str | None = None,
    ) -> None:
        """``registry`` and ``executor_id``: an engine's, whose declared queues are the only
        ones it may use and whose version it runs here; a client has neither."""
        self._store = store
        self._wakeups = wakeups
        self._max_payload_bytes = max_payload_bytes
        self._registry = registry
        self._executor_id = executor_id
        self._app_name = app_name

    def runs_here(self, version: str | None) -> bool:
        """Whether a workflow of ``version`` resumed or forked now runs in this process."""
        return (
            self._registry is not None
            and self._executor_id is not None
            and version == self._registry.application_version
        )

    # -- checks --------------------------------------------------------------------------------

    def _encode(self, input: Any, name: str) -> str:
        # Serialize before anything is written: a bad input leaves no trace.
        return serialization.encode_inputs(
            input, f"the input of workflow {name!r}", self._max_payload_bytes
        )

    def queue_of(self, queue: Queue | str | None) -> str | None:
        """The queue's name; an engine's must be declared."""
        name = queue_name(queue)
        if name is not None and self._registry is not None and name not in self._registry.queues:
            raise errors.EngineError(f"unknown queue {name!r}; declare it with engine.queue()")
        return name

    def _partitioned(self, queue: str | None) -> bool | None:
        """Whether ``queue`` is declared with partitions; None when this process cannot know
        (a client, or the internal queue)."""
        if queue is None or self._registry is None or queue not in self._registry.queues:
            return None
        return self._registry.queues[queue].partition_concurrency is not None

    def _created_or_same(self, created: bool, workflow_id: str, name: str) -> None:
        """An ID that existed is the same workflow again (nothing new runs), never another."""
        if created:
            return
        existing = self._store.get_workflow(workflow_id)
        if existing is not None and existing.name != name:
            raise errors.ConflictingWorkflowError(workflow_id, existing.name, name)

    # -- creating ------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        input: Any,
        *,
        workflow_id: str | None,
        timeout: float | dt.timedelta | None,
        queue: Queue | str | None,
        priority: int = 0,
        deduplication_id: str | None = None,
        delay: float | dt.timedelta | None = None,
        application_version: str | None = None,
        deduplication_policy: str = "reject",
        attributes: dict[str, Any] | None = None,
        partition_key: str | None = None,
    ) -> Admitted:
        """Record a new workflow: PENDING here without ``queue`` (an engine only), else waiting
        on ``queue`` (``priority``: lower first; ``deduplication_id``: refused while another
        workflow holding it waits or runs, or with ``deduplication_policy="return-existing"``
        that workflow is the one admitted; ``delay``: DELAYED that many seconds first).
        ``application_version``: a client's choice of version (an engine uses its own)."""
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
        return self.start_with(name, input, options, application_version)

    def start_with(
        self, name: str, input: Any, options: StartOptions, application_version: str | None = None
    ) -> Admitted:
        """``start``, its options given together."""
        new = self._new_row(name, input, options, application_version)
        if options.deduplication_policy == "return-existing" and new.deduplication_id is not None:
            holder = self._insert_or_holder(new)
            if holder is not None:
                return Admitted(holder)
            created = True
        else:
            created = self._store.ready().insert_workflow(new)
        self._created_or_same(created, new.workflow_id, name)
        return self._admitted(new, created)

    async def start_async(self, name: str, input: Any, options: StartOptions) -> Admitted:
        """``start`` from a coroutine: the insert is awaited in the group commit, holding no
        thread, so thousands of concurrent starts share commits. The rare paths that read the
        database again (a "return-existing" deduplication, an ID that existed) use a thread."""
        if options.deduplication_policy == "return-existing":
            return await asyncio.to_thread(self.start_with, name, input, options)
        new = self._new_row(name, input, options, None)
        created = await self._store.ready().insert_workflow_async(new)
        if not created:
            await asyncio.to_thread(self._created_or_same, created, new.workflow_id, name)
        return self._admitted(new, created)

    def _admitted(self, new: records.NewWorkflow, created: bool) -> Admitted:
        if new.queue_name is not None:
            self._wakeups.fire(signals.enqueued_key(new.queue_name))
            return Admitted(new.workflow_id)
        if not created:
            return Admitted(new.workflow_id)
        assert new.started_at is not None  # PENDING here: started now
        return Admitted(new.workflow_id, _running(new, new.started_at, fresh=True))

    def _new_row(
        self,
        name: str,
        input: Any,
        options: StartOptions,
        application_version: str | None,
    ) -> records.NewWorkflow:
        """The row ``start`` inserts, every check made (nothing is written here)."""
        if options.deduplication_policy not in DEDUPLICATION_POLICIES:
            raise ValueError(
                f"unknown deduplication_policy {options.deduplication_policy!r}; use one of "
                f"{', '.join(map(repr, DEDUPLICATION_POLICIES))}"
            )
        priority = options.priority
        deduplication_id = options.deduplication_id
        if options.queue is None and (
            priority or deduplication_id is not None or options.delay is not None
        ):
            raise ValueError("priority, deduplication_id and delay need a queue=")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, got {priority!r}")
        workflow_id = check_workflow_id(options.workflow_id)
        limit_ms = timeout_ms(options.timeout)
        on_queue = self.queue_of(options.queue)
        partition_key = options.partition_key
        partitions.check_key(partition_key, on_queue, self._partitioned(on_queue))
        delay_ms = queues.delay_ms(options.delay)
        inputs = self._encode(input, name)
        stored_attributes = attrs.encode(options.attributes)
        registry = self._registry
        if registry is not None:
            registry.freeze("a workflow was already started")
            application_version = registry.application_version
        now = clock.now_ms()
        if on_queue is None:
            if registry is None or self._executor_id is None:
                raise ValueError("a client starts workflows on a queue; pass queue=")
            new = records.NewWorkflow(
                traceparent=tracing.current_traceparent(),
                workflow_id=workflow_id,
                name=name,
                inputs=inputs,
                status=Status.PENDING,
                application_version=application_version,
                application_id=self._app_name,
                executor_id=self._executor_id,
                started_at=now,
                timeout_ms=limit_ms,
                deadline_ms=now + limit_ms if limit_ms is not None else None,
                attributes=stored_attributes,
            )
        else:  # its timeout counts from its dequeue
            new = records.NewWorkflow(
                traceparent=tracing.current_traceparent(),
                workflow_id=workflow_id,
                name=name,
                inputs=inputs,
                status=Status.DELAYED if delay_ms else Status.ENQUEUED,
                application_version=application_version,
                application_id=self._app_name,
                queue_name=on_queue,
                timeout_ms=limit_ms,
                priority=priority,
                deduplication_id=deduplication_id,
                delay_until=now + delay_ms if delay_ms else None,
                attributes=stored_attributes,
                partition_key=partition_key,
            )
        return new

    def debounce(
        self,
        name: str,
        key: str,
        input: Any,
        *,
        period_ms: int,
        max_wait_ms: int | None,
        queue: Queue | str | None,
    ) -> str:
        """Record one debounce of ``key`` (engine/debounce.py): join the key's open burst
        (its input replaced, its start pushed forward), or open one, a workflow DELAYED
        ``period_ms`` on ``queue`` (None: the internal queue). The burst's workflow ID."""
        on_queue = self.queue_of(queue) or INTERNAL_QUEUE
        partitions.check_key(None, on_queue, self._partitioned(on_queue))
        inputs = self._encode(input, name)
        registry = self._registry
        version = None
        if registry is not None:
            registry.freeze("a workflow was already debounced")
            version = registry.application_version
        store = self._store.ready()
        # Each round either joins the open burst or opens one; it goes round again only when
        # another process opened it in between (then it is there to join), or when that
        # burst started before it could be joined (then a new one opens).
        for _ in range(10):
            joined, started = store.bursts.push_burst(name, key, inputs, period_ms, max_wait_ms)
            if started:
                self._wakeups.fire(signals.ENQUEUED)
            if joined is not None:
                return joined
            new = records.NewWorkflow(
                traceparent=tracing.current_traceparent(),
                workflow_id=str(uuid.uuid4()),
                name=name,
                inputs=inputs,
                status=Status.DELAYED,
                application_version=version,
                application_id=self._app_name,
                queue_name=on_queue,
                delay_until=clock.now_ms() + period_ms,
                debounce_key=key,
            )
            if store.bursts.open_burst(new):
                return new.workflow_id
        raise errors.EngineError(
            f"the burst of debounce key {key!r} of workflow {name!r} kept starting while "
            "being joined; try the debounce again"
        )

    def _insert_or_holder(self, new: records.NewWorkflow) -> str | None:
        """Insert a row with a deduplication ID; None when created, else the ID of the
        workflow holding the deduplication ID (or of the row that existed under this ID)."""
        store = self._store.ready()
        assert new.queue_name is not None and new.deduplication_id is not None
        # The holder may finish between the refused insert and the look-up (its ID is free
        # again): then the insert is tried again.
        for _ in range(10):
            try:
                if store.insert_workflow(new):
                    return None
                self._created_or_same(False, new.workflow_id, new.name)
                return new.workflow_id
            except errors.QueueDeduplicatedError:
                holder = store.deduplicated_holder(new.queue_name, new.deduplication_id)
                if holder is not None:
                    return holder
        raise errors.EngineError(
            f"deduplication ID {new.deduplication_id!r} on queue {new.queue_name!r} kept "
            "changing hands; try the start again"
        )

    def child(
        self,
        parent: Parent,
        name: str,
        input: Any,
        *,
        workflow_id: str | None,
        timeout: float | dt.timedelta | None,
        detached: bool,
        queue: Queue | str | None,
        attributes: dict[str, Any] | None = None,
    ) -> tuple[Admitted, records.StepOutcome]:
        """Create a child (ID ``f"{parent}-{step}"`` unless given) together with the parent's
        step that records it. It inherits the parent's deadline unless ``detached``."""
        on_queue = self.queue_of(queue)
        child_id = check_workflow_id(
            workflow_id if workflow_id is not None else f"{parent.workflow_id}-{parent.step_id}"
        )
        inputs = self._encode(input, name)
        stored_attributes = attrs.encode(attributes)
        limit_ms = timeout_ms(timeout)
        inherited = None if detached else parent.deadline_ms
        assert self._registry is not None, "only a workflow of an engine starts children"
        version = self._registry.application_version
        now = clock.now_ms()
        if on_queue is None:
            own = now + limit_ms if limit_ms is not None else None
            new = records.NewWorkflow(
                traceparent=tracing.current_traceparent(),
                workflow_id=child_id,
                name=name,
                inputs=inputs,
                status=Status.PENDING,
                application_version=version,
                application_id=self._app_name,
                executor_id=parent.executor_id,
                started_at=now,
                parent_workflow_id=parent.workflow_id,
                timeout_ms=limit_ms,
                deadline_ms=min((d for d in (own, inherited) if d is not None), default=None),
                attributes=stored_attributes,
            )
        else:  # waits on the queue; its own timeout counts from its dequeue
            new = records.NewWorkflow(
                traceparent=tracing.current_traceparent(),
                workflow_id=child_id,
                name=name,
                inputs=inputs,
                status=Status.ENQUEUED,
                application_version=version,
                application_id=self._app_name,
                queue_name=on_queue,
                timeout_ms=limit_ms,
                parent_workflow_id=parent.workflow_id,
                deadline_ms=inherited,
                attributes=stored_attributes,
            )
        step = records.NewStep(
            workflow_id=parent.workflow_id,
            step_id=parent.step_id,
            name=name,
            output=None,
            error=None,
            started=now,
            child_workflow_id=child_id,
        )
        created, outcome = self._store.insert_child(new, step, parent.executor_id)
        self._created_or_same(created, child_id, name)
        if created and on_queue is not None:
            self._wakeups.fire(signals.enqueued_key(on_queue))
        run_here = _running(new, now, fresh=True) if created and on_queue is None else None
        return Admitted(child_id, run_here), outcome

    def fork(
        self,
        workflow_id: str,
        start_step: int,
        *,
        new_workflow_id: str | None,
        application_version: str | None,
        queue: Queue | str | None = None,
        input: Any = UNCHANGED,
    ) -> Admitted:
        """A new workflow with the steps before ``start_step`` copied (not re-run); on
        ``queue`` when given, with ``input`` instead of the original's when given."""
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 1:
            raise ValueError(f"start_step must be a step number >= 1, got {start_step!r}")
        new_id = check_workflow_id(new_workflow_id, "new_workflow_id")
        on_queue = self.queue_of(queue)
        store = self._store.ready()
        original = store.get_workflow(workflow_id)
        if original is None:
            raise errors.WorkflowNotFoundError(workflow_id)
        # A new input is checked (and refused) before anything is written.
        inputs = original.inputs if input is UNCHANGED else self._encode(input, original.name)
        version = application_version or original.application_version
        here = on_queue is None and self.runs_here(version)
        now = clock.now_ms()
        limit_ms = original.timeout_ms
        new = records.NewWorkflow(
            traceparent=tracing.current_traceparent(),
            workflow_id=new_id,
            name=original.name,
            inputs=inputs,
            status=Status.PENDING if here else Status.ENQUEUED,
            application_version=version,
            application_id=None,
            executor_id=self._executor_id if here else None,
            started_at=now if here else None,
            forked_from=workflow_id,
            queue_name=None if here else (on_queue or INTERNAL_QUEUE),
            timeout_ms=limit_ms,
            deadline_ms=now + limit_ms if here and limit_ms is not None else None,
        )
        if not store.fork_workflow(new, workflow_id, start_step):
            raise errors.EngineError(
                f"cannot fork into workflow ID {new_id!r}: it is already taken; pass another "
                "new_workflow_id"
            )
        if new.queue_name is not None:
            self._wakeups.fire(signals.enqueued_key(new.queue_name))
        # Steps were copied (unless it starts from the first): the run reads them back.
        return Admitted(new_id, _running(new, now, fresh=start_step == 1) if here else None)

    def resume(self, workflow_id: str, queue: Queue | str | None = None) -> Admitted:
        """Put a CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED or ENQUEUED workflow back to work
        from its last completed step; a second resume (or one of a running workflow) does
        nothing. A workflow that was on a queue goes back to that queue (its limits still
        apply) unless ``queue`` names another; one that was not runs here or on the internal
        queue."""
        named = self.queue_of(queue)
        store = self._store.ready()
        current = store.get_workflow(workflow_id)
        if current is None:
            raise errors.WorkflowNotFoundError(workflow_id)
        own = current.queue_name if current.queue_name != INTERNAL_QUEUE else None
        on_queue = named or own
        here = on_queue is None and self.runs_here(current.application_version)
        row = store.resume_workflow(
            workflow_id,
            status=Status.PENDING if here else Status.ENQUEUED,
            executor_id=self._executor_id if here else None,
            queue_name=None if here else (on_queue or INTERNAL_QUEUE),
            started_at=clock.now_ms() if here else None,
        )
        if row is not None and not here:
            self._wakeups.fire(signals.enqueued_key(on_queue or INTERNAL_QUEUE))
        return Admitted(workflow_id, row if here else None)


def _running(new: records.NewWorkflow, now: int, fresh: bool) -> records.WorkflowRow:
    """The row just created PENDING, as the executor reads it (without reading it back)."""
    return records.WorkflowRow(
        workflow_id=new.workflow_id,
        status=new.status,
        name=new.name,
        inputs=new.inputs,
        output=None,
        error=None,
        executor_id=new.executor_id,
        application_version=new.application_version,
        created_at=now,
        updated_at=now,
        recovery_attempts=0,
        queue_name=new.queue_name,
        timeout_ms=new.timeout_ms,
        deadline_ms=new.deadline_ms,
        started_at=new.started_at,
        completed_at=None,
        parent_workflow_id=new.parent_workflow_id,
        forked_from=new.forked_from,
        fresh=fresh,
        admitted=True,
        traceparent=new.traceparent,
    )
