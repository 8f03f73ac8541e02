"""Aggregates for the overview, queues, schedules and versions pages (bounded queries only)."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, QuerySet

from console import bulk, dbos_actions, fleet, now, sources
from console.models import Executor, Schedule, Workflow
from engine import scheduler
from engine.rows import from_ms

UNFINISHED = ("PENDING", "ENQUEUED", "DELAYED")
CLASSIFY_CAP = 2000  # PENDING workflows whose last step the queues page reads
LATENCY_SAMPLE = 5000  # latency percentiles come from the most recent finished workflows
BUCKETS = 24
MAX_SCHEDULES = 200  # the schedules page lists at most this many


def user_workflows() -> QuerySet[Workflow]:
    """Every workflow but the console's own (its bulk actions)."""
    return Workflow.objects.exclude(name=bulk.WORKFLOW)


def live_executors(now_ms: int) -> list[Executor]:
    cutoff = now_ms - int(settings.WAYMARK_HEARTBEAT_TIMEOUT * 1000)
    return list(Executor.objects.filter(last_heartbeat__gte=cutoff).order_by("executor_id"))


def status_counts(since_ms: int) -> dict[str, int]:
    rows = (
        user_workflows()
        .filter(created_at__gte=since_ms)
        .values("status")
        .annotate(n=Count("workflow_uuid"))
        .order_by()
    )
    return {r["status"]: r["n"] for r in rows}


@dataclass
class Series:
    labels: list[str]
    completed: list[int]
    failed: list[int]
    p50: list[float | None]
    p95: list[float | None]
    bucket_ms: int = 0
    sampled: bool = False  # latencies come from the latest LATENCY_SAMPLE only


def series(since_ms: int, now_ms: int) -> Series:
    """Throughput (SUCCESS and ERROR), failures and latency (created -> completed) in BUCKETS
    time buckets; cancelled workflows are left out of all three."""
    bucket = max((now_ms - since_ms) // BUCKETS, 1)
    rows = (
        user_workflows()
        .filter(completed_at__isnull=False, created_at__gte=since_ms)
        .order_by("-created_at")
        .values_list("created_at", "completed_at", "status")[:LATENCY_SAMPLE]
    )
    completed = [0] * BUCKETS
    failed = [0] * BUCKETS
    latencies: list[list[float]] = [[] for _ in range(BUCKETS)]
    for created, done, status in rows:
        if status not in ("SUCCESS", "ERROR"):
            continue  # a cancelled workflow neither completed its work nor measures latency
        i = min(max((done - since_ms) // bucket, 0), BUCKETS - 1)
        completed[i] += 1
        failed[i] += status == "ERROR"
        latencies[i].append((done - created) / 1000)

    def pct(values: list[float], q: int) -> float | None:
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]

    labels = [
        dt.datetime.fromtimestamp((since_ms + i * bucket) / 1000, dt.UTC).strftime("%H:%M")
        for i in range(BUCKETS)
    ]
    return Series(
        labels,
        completed,
        failed,
        [pct(v, 50) for v in latencies],
        [pct(v, 95) for v in latencies],
        bucket,
        len(rows) == LATENCY_SAMPLE,
    )


def stuck(now_ms: int, live: list[Executor]) -> list[Workflow]:
    """PENDING workflows whose executor has no live heartbeat, or handed to Celery and taken
    by no worker (console.fleet), oldest first (none on a source without heartbeats, a DBOS
    database: liveness is unknown there, not dead)."""
    if not sources.current().liveness_known:
        return []
    return list(
        user_workflows()
        .filter(fleet.stuck_filter(now_ms, live))
        .only("workflow_uuid", "name", "executor_id", "updated_at", "status")
        .order_by("updated_at")[:20]
    )


@dataclass
class QueueInfo:
    name: str
    enqueued: int = 0
    running: int = 0
    sleeping: int = 0  # PENDING, but parked in a durable sleep
    waiting: int = 0  # PENDING, but waiting for a message, an event or a child
    handed_over: int = 0  # PENDING under a dispatcher: sent to Celery, not running yet
    delayed: int = 0
    oldest_ms: int | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    workers: list[str] = field(default_factory=list)
    paused: bool = False  # by an operator (engine queue control), on every worker

    @property
    def limits_text(self) -> str:
        return now.limits_text(self.limits)


def queues(live: list[Executor], now_ms: int, *, internal: bool = False) -> list[QueueInfo]:
    """Per queue: depth, what its PENDING workflows do (running, sleeping, waiting), limits.

    The engine's internal queue and the console's own are left out unless ``internal``.
    """
    found: dict[str, QueueInfo] = {}
    for executor in live:
        for spec in json.loads(executor.queues or "[]"):
            info = found.setdefault(spec["name"], QueueInfo(spec["name"]))
            info.limits = {k: v for k, v in spec.items() if k != "name" and v is not None}
            info.workers.append(executor.executor_id)
    rows = (
        Workflow.objects.filter(status__in=UNFINISHED, queue_name__isnull=False)
        .values("queue_name", "status")
        .annotate(n=Count("workflow_uuid"), oldest=Min("created_at"))
        .order_by()
    )
    for row in rows:
        info = found.setdefault(row["queue_name"], QueueInfo(row["queue_name"]))
        if row["status"] == "ENQUEUED":
            info.enqueued, info.oldest_ms = row["n"], row["oldest"]
        elif row["status"] == "PENDING":
            info.running = row["n"]
        else:
            info.delayed = row["n"]
    if sources.current().is_dbos:  # limits from DBOS's own queues table, when it has rows
        for name, conc, worker, rate_max, rate_period in dbos_actions.read(
            sources.current(), "queue_limits"
        ):
            info = found.setdefault(name, QueueInfo(name))
            spec = {"concurrency": conc, "worker_concurrency": worker}
            if rate_max and rate_period:
                spec["rate_limit"] = [rate_max, rate_period]
            info.limits = {k: v for k, v in spec.items() if v is not None}
    _classify_pending(found, now.Live.of(live), now_ms, fleet.dispatchers(live))

    shown = [q for q in found.values() if internal or q.name not in now.HIDDEN_QUEUES]
    return sorted(shown, key=lambda q: q.name)


def _classify_pending(
    found: dict[str, QueueInfo], live: now.Live, now_ms: int, dispatchers: set[str]
) -> None:
    """Split each queue's PENDING count: a parked sleep or a wait is not running (it holds
    no thread), though the engine still counts it against the queue's concurrency."""
    pending = list(
        Workflow.objects.filter(status="PENDING", queue_name__in=list(found))
        .only(*now.FIELDS)
        .order_by("created_at")[:CLASSIFY_CAP]
    )
    lines = now.for_workflows(pending, live, now_ms)
    for w in pending:
        kind = lines[w.workflow_uuid].kind if w.workflow_uuid in lines else "running"
        info = found[w.queue_name or ""]
        if w.executor_id in dispatchers:
            info.handed_over += 1
            info.running -= 1
        elif kind == "sleeping":
            info.sleeping += 1
            info.running -= 1
        elif kind in ("waiting", "child"):
            info.waiting += 1
            info.running -= 1


@dataclass
class ScheduleInfo:
    name: str
    cron: str
    words: str
    next_ticks: list[dt.datetime]
    recent: list[Workflow]
    # A managed schedule's row (engine.schedules); a schedule only a heartbeat or DBOS
    # declares has the defaults.
    managed: bool = False
    workflow_name: str = ""
    timezone: str = "UTC"
    queue: str | None = None
    paused: bool = False
    next_fire_at: dt.datetime | None = None
    last_fire_at: dt.datetime | None = None


def cron_words(cron: str) -> str:
    """ "Every 30 seconds": cron-descriptor reads 6 fields seconds-first, as croniter is told."""
    from cron_descriptor import get_description

    try:
        return str(get_description(cron))
    except Exception:  # a dialect it does not know: show the expression itself
        return cron


def _next_ticks(cron: str, zone: str, now: dt.datetime) -> list[dt.datetime]:
    """The next 5 ticks as the engine's scheduler computes them (time zone, DST)."""
    try:
        found = scheduler.ticks(cron, now, scheduler.zone(zone, "shown"))
        return [next(found) for _ in range(5)]
    except (ValueError, KeyError):  # a cron this croniter cannot read: shown as text only
        return []


def schedules(live: list[Executor], now: dt.datetime) -> list[ScheduleInfo]:
    """The managed schedules (the engine's ``schedules`` table), and the schedules live
    executors declare or DBOS made that have no managed row (an older worker's, DBOS's)."""
    crons: dict[str, str] = {}
    for executor in live:
        crons.update(json.loads(executor.schedules or "{}"))
    if sources.current().is_dbos:  # DBOS.create_schedule's schedules
        crons.update(dict(dbos_actions.read(sources.current(), "schedules")))
    managed = {s.name: s for s in Schedule.objects.order_by("name")[:MAX_SCHEDULES]}
    result = []
    for name in sorted(set(crons) | set(managed))[:MAX_SCHEDULES]:
        row = managed.get(name)
        cron = row.cron if row is not None else crons[name]
        workflow = row.workflow_name if row is not None else name
        recent = list(
            Workflow.objects.filter(name=workflow)
            .filter(
                # the engine's run IDs are name@time; DBOS's (sched-...) differ: any of its runs
                **({} if sources.current().is_dbos else {"workflow_uuid__startswith": f"{name}@"})
            )
            .only("workflow_uuid", "status", "created_at", "updated_at", "name")
            .order_by("-created_at")[:10]
        )
        info = ScheduleInfo(name, cron, cron_words(cron), [], recent, workflow_name=workflow)
        if row is not None:
            info.managed, info.timezone, info.queue = True, row.timezone, row.queue
            info.paused = bool(row.paused)
            info.next_fire_at = None if info.paused else from_ms(row.next_fire_at)
            info.last_fire_at = from_ms(row.last_fire_at or None)
        info.next_ticks = [] if info.paused else _next_ticks(cron, info.timezone, now)
        result.append(info)
    return result


def versions(live: list[Executor]) -> list[dict[str, Any]]:
    rows = (
        user_workflows()
        .values("application_version", "status")
        .annotate(n=Count("workflow_uuid"))
        .order_by()
    )
    by_version: dict[str, dict[str, Any]] = {}
    served = {e.application_version for e in live}
    for row in rows:
        version = row["application_version"] or "(any)"
        entry = by_version.setdefault(
            version, {"version": version, "counts": {}, "executors": [], "stranded": 0}
        )
        entry["counts"][row["status"]] = row["n"]
        if (
            sources.current().liveness_known
            and row["status"] in ("PENDING", "ENQUEUED")
            and row["application_version"]
            and row["application_version"] not in served
        ):
            entry["stranded"] += row["n"]
    for executor in live:
        entry = by_version.setdefault(
            executor.application_version,
            {"version": executor.application_version, "counts": {}, "executors": [], "stranded": 0},
        )
        entry["executors"].append(executor)
    return sorted(by_version.values(), key=lambda v: v["version"])
