"""How an ``Engine`` is put together: its parts, built and wired once, and what launch adds.

``assemble`` builds every part an engine owns from its constructor's options, each given
what it needs: the store; ``Wakeups`` (signals, LISTEN); ``Lifecycle``; the ``Registry``
(workflows, queues, version); ``Admission`` (every new workflow row); the ``Runtime`` (runs
workflows here: pool, timers, stop flag, runs); ``Control`` (inspection and control, shared
with ``Client``); ``QueueControl`` and ``Schedules`` (durable queue settings, managed
schedules); ``Routing`` (where a start, send or get_event goes: a workflow's context or not).
``worker`` and ``schedule_loop`` build the two background loops that ``launch()`` starts.
Nothing here starts a thread or touches the database: the engine decides when.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine import errors, queue_control, registry, scheduler, schedules, store
from engine import metrics as metrics_mod
from engine.admission import Admission
from engine.control import Control
from engine.dispatch import Dispatcher, Handoff
from engine.lifecycle import Lifecycle
from engine.orphans import Orphans
from engine.results import Results
from engine.routing import Routing
from engine.runs import Runs
from engine.runtime import Runtime
from engine.store import Store, records
from engine.wakeups import Wakeups
from engine.worker import Worker


@dataclass(frozen=True)
class Parts:
    """The parts one engine owns, built by ``assemble``."""

    store: Store
    metrics: metrics_mod.NullMetrics
    wakeups: Wakeups
    lifecycle: Lifecycle
    registry: registry.Registry
    results: Results
    admission: Admission
    runtime: Runtime
    control: Control
    queue_control: queue_control.QueueControl
    schedules: schedules.Schedules
    routing: Routing


def resolve_metrics(metrics: metrics_mod.NullMetrics | bool) -> metrics_mod.NullMetrics:
    """True: the process-wide ``Metrics`` on ``engine.metrics.registry()``; False: nowhere."""
    if metrics is True:
        return metrics_mod.default()
    if metrics is False:
        return metrics_mod.NullMetrics()
    return metrics


def assemble(
    app_name: str,
    database_url: str,
    *,
    schema: str,
    application_version: str | None,
    executor_id: str,
    max_workflow_threads: int,
    max_payload_bytes: int,
    db_retry_seconds: float | None,
    one_writer: bool,
    metrics: metrics_mod.NullMetrics | bool,
    start_scheduled: scheduler.Start,
) -> Parts:
    """Build and wire an engine's parts. ``one_writer``: a process that runs only handed-over
    work (a Celery worker process, one of many per host) writes little at a time: one writer
    connection keeps its budget small. ``start_scheduled``: how a schedule's tick starts its
    workflow (the engine's ``start_workflow``, so a tick takes the same path as any start)."""
    st = store.connect(database_url, schema, db_retry_seconds, one_writer=one_writer)
    reporting = resolve_metrics(metrics)
    st.metrics = reporting
    wakeups = Wakeups(st)
    workflows = registry.Registry(application_version)
    runs = Runs()
    results = Results(st, runs, wakeups)
    admission = Admission(
        st,
        wakeups,
        max_payload_bytes,
        registry=workflows,
        executor_id=executor_id,
        app_name=app_name,
    )
    runtime = Runtime(
        st,
        wakeups,
        workflows,
        admission,
        results,
        runs,
        executor_id=executor_id,
        name=app_name,
        max_threads=max_workflow_threads,
        max_payload_bytes=max_payload_bytes,
    )
    control = Control(
        st, wakeups, admission, results, max_payload_bytes=max_payload_bytes, local=runtime
    )
    return Parts(
        store=st,
        metrics=reporting,
        wakeups=wakeups,
        lifecycle=Lifecycle(st),
        registry=workflows,
        results=results,
        admission=admission,
        runtime=runtime,
        control=control,
        queue_control=queue_control.QueueControl(st, wakeups, lambda: workflows.queues),
        schedules=schedules.Schedules(
            st, wakeups, start_scheduled, schedules.registered(workflows)
        ),
        routing=Routing(workflows, admission, runtime, control, results),
    )


@dataclass(frozen=True)
class LoopOptions:
    """The engine's options that shape its worker loop (see ``Engine.__init__``)."""

    served: Sequence[str] | None  # the declared queues it takes work from (None: all)
    heartbeat_timeout: float
    claim_queues: bool
    dispatcher: Dispatcher | None


def check_served(parts: Parts, options: LoopOptions) -> None:
    """Refuse to launch serving a queue never declared (a typo would serve nothing, silently)."""
    unknown = set(options.served or ()) - set(parts.registry.queues)
    if unknown:
        raise errors.EngineError(
            f"queues {sorted(unknown)} were never declared with engine.queue()"
        )


def worker(parts: Parts, options: LoopOptions, executor_id: str) -> Worker:
    """The worker loop (heartbeat, dead executors, queues) of a launching engine."""
    served = options.served
    queues = [q for q in parts.registry.queues.values() if served is None or q.name in served]
    version = parts.registry.application_version
    runtime = parts.runtime
    # A dispatcher's claimed rows are PENDING under its ID, with no run, until a Celery worker
    # takes them over: not orphans. Every other process adopts its own.
    adopt = (
        None
        if options.dispatcher is not None
        else Orphans(parts.store, executor_id, version, runtime.running, runtime.resume)
    )
    return Worker(
        parts.store,
        parts.wakeups,
        parts.runtime.stopping,
        executor_id=executor_id,
        application_version=parts.registry.application_version,
        capacity=parts.runtime,
        dispatch=dispatch_function(parts, executor_id, options.dispatcher),
        queues=queues,
        schedules=parts.registry.schedules(),
        heartbeat_timeout=options.heartbeat_timeout,
        claim_queues=options.claim_queues,
        settings=parts.queue_control.effective,
        dispatching=options.dispatcher is not None,
        orphans=adopt,
    )


def start_loops(
    parts: Parts, options: LoopOptions, executor_id: str, start_scheduled: scheduler.Start
) -> tuple[Worker, scheduler.Scheduler]:
    """Start a launching engine's worker loop, then its scheduler, once the registered
    ``schedule=`` workflows are durable schedules (the scheduler fires them from there)."""
    loop = worker(parts, options, executor_id)
    loop.start()
    parts.schedules.sync(parts.registry.schedules())
    fires = schedule_loop(parts, start_scheduled)
    fires.launch()
    return loop, fires


def dispatch_function(
    parts: Parts, executor_id: str, dispatcher: Dispatcher | None
) -> Callable[[records.WorkflowRow], object]:
    """What the worker loop does with a claimed workflow: run it here, or hand it over."""
    if dispatcher is None:
        return parts.runtime.run_claimed
    st = parts.store
    dispatcher.start(
        Handoff(
            executor_id=executor_id,
            stopping=parts.runtime.stopping,
            unclaimed=lambda older_than_s: st.handed_over_unclaimed(
                executor_id, int(older_than_s * 1000)
            ),
            application_version=parts.registry.application_version,
        )
    )
    return lambda row: dispatcher.dispatch(row.workflow_id)


def schedule_loop(parts: Parts, start_scheduled: scheduler.Start) -> scheduler.Scheduler:
    """The loop that fires the database's schedules whose workflow this engine registered."""
    workflows = parts.registry
    return scheduler.Scheduler(
        parts.store,
        parts.wakeups,
        start_scheduled,
        lambda workflow_name: workflow_name in workflows.workflows,
        parts.runtime.stopping,
    )
