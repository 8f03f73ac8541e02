"""What an unfinished workflow is doing now, read from what the system tables hold today.

The engine records what a PENDING workflow waits on (``workflow_status.waiting``, see
``engine.waits``): a message (its topic), an event (its key), a child, a sleep; that record is
preferred while it holds. Otherwise the line is derived: a workflow's last recorded
step says what it started last (a ``waymark.sleep`` with its wake-up time, the durable timeout
a ``recv`` or ``get_event`` records before waiting, a step that launched a child), its row says
where it is queued or delayed, and the executors' heartbeats say who is alive and which
versions and queues they serve. ``describe`` is the one place that turns these into a line;
the loaders below fetch what it needs in a few bounded queries (one workflow, or a page).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import OuterRef, Q, Subquery

from console import bulk, sources
from console.models import Executor, Step, Workflow
from console.payloads import with_heads
from console.templatetags.console_tags import duration
from engine import operations, waits
from engine.queues import INTERNAL_QUEUE
from engine.records import FINAL_STATUSES, Status

UNFINISHED = (Status.PENDING, Status.ENQUEUED, Status.DELAYED)
HEAD_CHARS = 64  # a sleep's wake-up time or a timeout is a short JSON number
AHEAD_CAP = 10_000  # "10,000+ ahead": never an unbounded count
LIST_AHEAD_CAP = 100  # cheaper still on a page of 50 rows
# Queues that belong to the engine and the console, never shown as a workflow's queue.
HIDDEN_QUEUES = frozenset({INTERNAL_QUEUE, bulk.QUEUE})
# The workflow columns describe() reads (load them all: a deferred one is a query per row).
FIELDS = (
    "workflow_uuid",
    "status",
    "queue_name",
    "priority",
    "executor_id",
    "application_version",
    "created_at",
    "updated_at",
    "started_at_epoch_ms",
    "delay_until_epoch_ms",
    "waiting",
    "debounce_key",
)


@dataclass(frozen=True)
class Now:
    # running | sleeping | waiting | child | queued | delayed | debounced | stranded | orphaned
    kind: str
    text: str  # a sentence for the header
    short: str  # a few words for the list's column
    link: str | None = None  # a workflow to link (the child waited on)
    until_ms: int | None = None


@dataclass
class Live:
    """Who is alive, from the executors' heartbeats."""

    executors: list[Executor]
    ids: set[str] = field(default_factory=set)
    versions: set[str] = field(default_factory=set)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> limits

    @classmethod
    def of(cls, executors: list[Executor]) -> Live:
        live = cls(executors)
        for e in executors:
            live.ids.add(e.executor_id)
            live.versions.add(e.application_version)
            for spec in json.loads(e.queues or "[]"):
                live.queues[spec["name"]] = spec
        return live


def shown_queue(name: str | None) -> str:
    """The queue to show for a workflow: none for the engine's and the console's own."""
    return "" if not name or name in HIDDEN_QUEUES else name


def limits_text(spec: dict[str, Any] | None) -> str:
    """``at most 2 at once · 1 per worker · 5 starts / 10 s``, or "" without limits."""
    if not spec:
        return ""
    parts = []
    if spec.get("concurrency"):
        parts.append(f"at most {spec['concurrency']} at once")
    if spec.get("worker_concurrency"):
        parts.append(f"{spec['worker_concurrency']} per worker")
    if spec.get("rate_limit"):
        starts, period = spec["rate_limit"]
        parts.append(f"{starts} starts / {period:g} s")
    return " · ".join(parts)


def at(ms: int, now_ms: int) -> str:
    """A time in UTC: with the date only when it is not today's."""
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
    return when.strftime("%H:%M:%S UTC" if when.date() == today else "%Y-%m-%d %H:%M:%S UTC")


def until(ms: int, now_ms: int) -> str:
    return f"in {duration(ms - now_ms)}" if ms > now_ms else f"{duration(now_ms - ms)} ago"


def _number(head: str | None) -> int | None:
    try:
        return int(json.loads(head)) if head else None
    except (TypeError, ValueError):
        return None


def _stranded(workflow: Workflow, live: Live) -> Now | None:
    if not sources.current().liveness_known:  # DBOS: no heartbeats, so no alarm either way
        return None
    version = workflow.application_version
    if version and version not in live.versions:
        return Now(
            "stranded",
            f"stranded: no live executor runs version {version}; it will not move until one "
            "does (or fork it onto a live version)",
            "stranded (no executor for its version)",
        )
    return None


def describe(
    workflow: Workflow,
    last: Step | None,
    live: Live,
    now_ms: int,
    *,
    ahead: tuple[int, bool] | None = None,
    child_status: str | None = None,
) -> Now | None:
    """The "now" line of one workflow; None once it is finished.

    ``last``: its highest-numbered step (with ``output_head``); ``ahead``: for an ENQUEUED
    workflow, how many wait before it on its queue (count, capped); ``child_status``: the
    status of the child ``last`` launched, if any.
    """
    status = workflow.status
    if status in FINAL_STATUSES:
        return None
    if status == Status.DELAYED:
        when = workflow.delay_until_epoch_ms
        key = getattr(workflow, "debounce_key", None)
        if key is not None and when is not None:
            return Now(
                "debounced",
                f"debounced (key “{key}”): starts at {at(when, now_ms)} "
                f"({until(when, now_ms)}) with the latest input, unless another debounce of "
                "the key pushes it later",
                f"debounced “{key}” until {at(when, now_ms)}",
                until_ms=when,
            )
        if when is None:
            return Now("delayed", "delayed", "delayed")
        return Now(
            "delayed",
            f"delayed until {at(when, now_ms)} ({until(when, now_ms)}), then queued",
            f"delayed until {at(when, now_ms)}",
            until_ms=when,
        )
    stranded = _stranded(workflow, live)
    if status == Status.ENQUEUED:
        if stranded:
            return stranded
        queue = workflow.queue_name or INTERNAL_QUEUE
        shown = shown_queue(queue)
        where = f"on queue {shown}" if shown else "for any worker"
        if queue not in live.queues and sources.current().liveness_known:
            return Now(
                "stranded",
                f"queued {where}, but no live worker serves that queue",
                "queued, no worker serves it",
            )
        count, capped = ahead or (0, False)
        number = f"{count:,}{'+' if capped else ''}"
        limits = limits_text(live.queues.get(queue))
        return Now(
            "queued",
            f"queued {where}: {number} ahead of it" + (f" (limits: {limits})" if limits else ""),
            f"queued, {number} ahead",
        )
    # PENDING: claimed by an executor, running or waiting.
    if stranded:
        return stranded
    executor = workflow.executor_id or "no executor"
    if workflow.executor_id not in live.ids and sources.current().liveness_known:
        return Now(
            "orphaned",
            f"its executor {executor} sends no heartbeat; a live executor of its version "
            "will recover it",
            "executor gone, awaiting recovery",
        )
    recorded = _recorded_wait(workflow, last, now_ms, executor)
    if recorded is not None:
        return recorded
    if last is not None:
        name, value = last.function_name, _number(getattr(last, "output_head", None))
        if name == operations.SLEEP and value is not None and value > now_ms:
            return Now(
                "sleeping",
                f"sleeping until {at(value, now_ms)} ({until(value, now_ms)}) on {executor}",
                f"sleeping until {at(value, now_ms)}",
                until_ms=value,
            )
        if name in (operations.RECV_TIMEOUT, operations.GET_EVENT_TIMEOUT) and value is not None:
            what = "a message" if name == operations.RECV_TIMEOUT else "an event"
            return Now(
                "waiting",
                f"waiting for {what} since {at(last.started_at_epoch_ms or value, now_ms)}, "
                f"timeout at {at(value, now_ms)} ({until(value, now_ms)}) on {executor}",
                f"waiting for {what}",
                until_ms=value,
            )
        if last.child_workflow_id and child_status not in (None, *FINAL_STATUSES):
            return Now(
                "child",
                f"waiting for child workflow {last.child_workflow_id} ({child_status}), "
                f"launched by step {last.function_id} on {executor}",
                "waiting for a child",
                link=last.child_workflow_id,
            )
        since = last.completed_at_epoch_ms or last.started_at_epoch_ms or workflow.updated_at
        return Now(
            "running",
            f"running step {last.function_id + 1} on {executor}; step {last.function_id} "
            f"{name} completed at {at(since, now_ms)} ({until(since, now_ms)})",
            f"running after step {last.function_id}",
        )
    since = workflow.started_at_epoch_ms or workflow.created_at
    return Now(
        "running",
        f"running its first step on {executor} since {at(since, now_ms)} ({until(since, now_ms)})",
        "running its first step",
    )


def _recorded_wait(workflow: Workflow, last: Step | None, now_ms: int, executor: str) -> Now | None:
    """The wait the engine recorded (engine.waits), while it still holds; None otherwise (the
    line is then derived from the last step)."""
    wait = waits.decode(getattr(workflow, "waiting", None))
    if wait is None or not waits.is_current(wait, last.function_id if last else None, now_ms):
        return None
    since = f"since {at(wait.since_ms, now_ms)}"
    timeout = ""
    if wait.until_ms is not None and wait.kind != waits.SLEEP:
        timeout = f", timeout at {at(wait.until_ms, now_ms)} ({until(wait.until_ms, now_ms)})"
    if wait.kind == waits.SLEEP and wait.until_ms is not None:
        return Now(
            "sleeping",
            f"sleeping until {at(wait.until_ms, now_ms)} ({until(wait.until_ms, now_ms)}) "
            f"on {executor}",
            f"sleeping until {at(wait.until_ms, now_ms)}",
            until_ms=wait.until_ms,
        )
    if wait.kind == waits.MESSAGE:
        topic = f"on topic “{wait.topic}”" if wait.topic is not None else "(no topic)"
        return Now(
            "waiting",
            f"waiting for a message {topic} {since}{timeout} on {executor}",
            f"waiting for a message {topic}",
            until_ms=wait.until_ms,
        )
    if wait.kind == waits.EVENT:
        source = f" of workflow {wait.workflow_id}" if wait.workflow_id else ""
        return Now(
            "waiting",
            f"waiting for an event: key “{wait.key}”{source} {since}{timeout} on {executor}",
            f"waiting for an event “{wait.key}”",
            link=wait.workflow_id,
            until_ms=wait.until_ms,
        )
    if wait.kind == waits.CHILD and wait.workflow_id:
        return Now(
            "child",
            f"waiting for child workflow {wait.workflow_id} (step {wait.step}) {since}"
            f"{timeout} on {executor}",
            "waiting for a child",
            link=wait.workflow_id,
            until_ms=wait.until_ms,
        )
    if wait.kind == waits.STEP:
        return Now(
            "waiting",
            f"waiting for the first of its concurrent steps (step {wait.step}) {since} "
            f"on {executor}",
            "waiting for concurrent steps",
        )
    return None


# -- loaders: what describe() needs, in a few bounded queries -----------------------------------


def last_steps(ids: Iterable[str]) -> dict[str, Step]:
    """The highest-numbered step of each workflow (one query, by primary key per workflow)."""
    ids = list(ids)
    if not ids:
        return {}
    newest = Step.objects.filter(workflow_uuid=OuterRef("workflow_uuid")).order_by("-function_id")
    steps = Step.objects.filter(
        workflow_uuid__in=ids, function_id=Subquery(newest.values("function_id")[:1])
    )
    return {s.workflow_uuid: s for s in with_heads(steps, ("output", "error"), HEAD_CHARS)}


def queued_ahead(workflow: Workflow, cap: int = AHEAD_CAP) -> tuple[int, bool]:
    """How many ENQUEUED workflows its queue serves first (lower priority, then older).

    Two workflows enqueued in the same millisecond are ordered by ID, so the order is total:
    of the two, exactly one is ahead of the other (by creation time alone neither was, and
    both said "0 ahead")."""
    before = Workflow.objects.filter(
        status=Status.ENQUEUED, queue_name=workflow.queue_name or INTERNAL_QUEUE
    ).filter(
        Q(priority__lt=workflow.priority)
        | Q(priority=workflow.priority, created_at__lt=workflow.created_at)
        | Q(
            priority=workflow.priority,
            created_at=workflow.created_at,
            workflow_uuid__lt=workflow.workflow_uuid,
        )
    )
    n = before.order_by()[: cap + 1].count()
    return min(n, cap), n > cap


def _child_statuses(steps: Iterable[Step]) -> dict[str, str]:
    children = [s.child_workflow_id for s in steps if s.child_workflow_id]
    if not children:
        return {}
    return dict(
        Workflow.objects.filter(workflow_uuid__in=children).values_list("workflow_uuid", "status")
    )


def for_workflows(
    workflows: Iterable[Workflow], live: Live, now_ms: int, cap: int = AHEAD_CAP
) -> dict[str, Now]:
    """The "now" line of every unfinished workflow among ``workflows``, by ID."""
    unfinished = [w for w in workflows if w.status in UNFINISHED]
    pending = [w.workflow_uuid for w in unfinished if w.status == Status.PENDING]
    steps = last_steps(pending)
    children = _child_statuses(steps.values())
    found = {}
    for w in unfinished:
        last = steps.get(w.workflow_uuid)
        line = describe(
            w,
            last,
            live,
            now_ms,
            ahead=queued_ahead(w, cap) if w.status == Status.ENQUEUED else None,
            child_status=children.get(last.child_workflow_id) if last is not None else None,
        )
        if line is not None:
            found[w.workflow_uuid] = line
    return found
