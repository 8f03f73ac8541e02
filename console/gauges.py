"""What the system tables say right now, as numbers: the readings behind ``/metrics`` and the
alert rules. Every query is bounded, so a scrape costs the same at a million workflows:

- counts are capped at CAP (10,000, as the workflow list's "10,000+"):
  ``SELECT count(*) FROM (SELECT 1 ... LIMIT cap)``; a value at the cap means "at least this
  many", and the metrics' help text says so. Exact counts of a big backlog cost a scan of it
  (at 200,000 ENQUEUED rows, 55-90 ms on Postgres before VACUUM sets the visibility map);
  the age of the oldest enqueued workflow, which is exact, shows whether a queue drains;
- a queue's oldest enqueued workflow comes from the enqueued index, one probe per priority;
- distinct queue names come from a loose index scan (one probe per queue, not per row);
- no COUNT(*) over a table: table sizes are the planner's estimate (Postgres) or the last rowid
  (SQLite);
- few round trips: a scrape is six statements whatever the rows, queues or schedules, because
  on a loaded machine each round trip waits to be scheduled (measured: 20 statements took
  150 ms at p50 where these six took 120 ms, at a load of 8 on two cores).

Indexes used (engine/sql/*/0001..0004): ``(status, created_at)``, the partial
``(queue_name, priority, created_at) WHERE status='ENQUEUED'``, the partial
``(executor_id, application_version) WHERE status IN ('PENDING','ENQUEUED')`` and
``(name, created_at)``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from croniter import croniter
from django.db import connections
from django.db.models import Case, QuerySet, TextField, When
from django.db.models.functions import Cast

from console import sources, stats
from console.models import Event, Executor, Notification, Schedule, Step, Workflow
from engine.records import FINAL_STATUSES, Status

CAP = 10_000
MAX_QUEUES = 100  # label values per queue metric (a bounded label set)
WINDOWS = {"1h": 3600, "24h": 86400}
UNFINISHED = tuple(s.value for s in Status if s not in FINAL_STATUSES)
FINAL = tuple(sorted(s.value for s in FINAL_STATUSES))
TABLES = tuple(m._meta.db_table for m in (Workflow, Step, Notification, Event, Executor))

# Queue names that have ENQUEUED work: a loose index scan of the enqueued index (each step asks
# the index for the next name), so a backlog of a million costs as much as one of ten.
_ENQUEUED_QUEUES = """
WITH RECURSIVE q(name) AS (
    SELECT min(queue_name) FROM workflow_status WHERE status = 'ENQUEUED'
    UNION ALL
    SELECT (SELECT min(queue_name) FROM workflow_status
            WHERE status = 'ENQUEUED' AND queue_name > q.name)
    FROM q WHERE q.name IS NOT NULL
)
SELECT name FROM q WHERE name IS NOT NULL LIMIT %s
"""

# Per queue, its capped backlog and its oldest enqueued workflow, for all the queues in one
# statement (one round trip: under a loaded machine every round trip waits to be scheduled).
# The enqueued index is ordered by (priority, created_at) within a queue, so min(created_at) is
# the first entry of each priority: p<i> walks the distinct priorities (a handful), one probe
# each, f<i> takes each one's first entry. The count reads the index in its order so that it
# stops at the cap. <i> is the queue's position in the list: an integer, never a name.
_BACKLOG_CTES = """
p{i}(priority) AS (
    SELECT min(priority) FROM workflow_status WHERE status = 'ENQUEUED' AND queue_name = %s
    UNION ALL
    SELECT (SELECT min(priority) FROM workflow_status
            WHERE status = 'ENQUEUED' AND queue_name = %s AND priority > p{i}.priority)
    FROM p{i} WHERE p{i}.priority IS NOT NULL
),
f{i}(created_at) AS (
    SELECT (SELECT min(w.created_at) FROM workflow_status w
            WHERE w.status = 'ENQUEUED' AND w.queue_name = %s AND w.priority = p{i}.priority)
    FROM p{i} WHERE p{i}.priority IS NOT NULL
)"""
_BACKLOG_SELECT = """
SELECT {i}, (SELECT count(*) FROM (SELECT 1 FROM workflow_status
                                   WHERE status = 'ENQUEUED' AND queue_name = %s
                                   ORDER BY priority, created_at LIMIT %s) AS c),
       (SELECT min(created_at) FROM f{i})"""

_PG_ESTIMATES = """
SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
"""


def capped(qs: QuerySet[Workflow], cap: int) -> int:
    """``count(*)`` over at most ``cap`` rows (Django wraps the sliced query in a subquery)."""
    return qs[:cap].count()


Part = tuple[str, list[object]]  # a SQL fragment and its parameters


def _compiled(qs: QuerySet[Workflow]) -> Part:
    sql, params = qs.query.get_compiler(using=sources.alias()).as_sql()
    return sql, list(params)


def _count_part(qs: QuerySet[Workflow]) -> Part:
    inner, params = _compiled(qs.values("pk")[:CAP])
    return f"SELECT count(*) FROM ({inner}) AS c", params


def _int(value: object) -> int | None:
    return int(value) if value is not None else None  # type: ignore[call-overload]


def _scalars(parts: list[Part]) -> list[object]:
    """Many one-value queries in one statement, ``SELECT (q1), (q2), ...``: one round trip."""
    if not parts:
        return []
    sql = "SELECT " + ", ".join(f"({fragment})" for fragment, _ in parts)
    with connections[sources.alias()].cursor() as cursor:
        cursor.execute(sql, [p for _, params in parts for p in params])
        return list(cursor.fetchone())


@dataclass
class QueueReading:
    name: str
    enqueued: int = 0
    running: int = 0
    delayed: int = 0
    oldest_enqueued_ms: int | None = None


@dataclass
class Readings:
    now_ms: int
    live: list[Executor]
    unfinished: dict[str, int] = field(default_factory=dict)
    recent: dict[tuple[str, str], int] = field(default_factory=dict)  # (status, window) -> n
    queues: dict[str, QueueReading] = field(default_factory=dict)
    # None where liveness is unknown (a DBOS source keeps no heartbeats): no sample, no alarm.
    stuck: int | None = 0
    stranded: int | None = 0
    oldest_pending_ms: int | None = None
    schedule_lag: dict[str, float] = field(default_factory=dict)
    table_rows: dict[str, float] = field(default_factory=dict)

    @property
    def live_by_version(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for executor in self.live:
            found[executor.application_version] = found.get(executor.application_version, 0) + 1
        return found


def read(now_ms: int) -> Readings:
    """Everything ``/metrics`` exports, in six statements (plus one per 100 queues)."""
    live = stats.live_executors(now_ms)
    r = Readings(now_ms, live)
    managed = _unfinished(r)
    declared = {k: v for k, v in _declared_schedules(live).items() if k not in managed}
    parts = [
        _count_part(Workflow.objects.filter(status=status, created_at__gte=since))
        for since in (now_ms - seconds * 1000 for seconds in WINDOWS.values())
        for status in FINAL
    ]
    parts.append(_count_part(_stranded(live)))
    parts.append(_compiled(_oldest_pending()))
    parts.extend(_compiled(_latest_tick(name)) for name in declared)
    values = _scalars(parts)
    keys = [(status, window) for window in WINDOWS for status in FINAL]
    r.recent = {key: _int(n) or 0 for key, n in zip(keys, values, strict=False)}
    r.stranded = _int(values[len(keys)]) or 0
    r.oldest_pending_ms = _int(values[len(keys) + 1])
    latest = dict(zip(declared, values[len(keys) + 2 :], strict=True))
    r.schedule_lag = _lags(declared, {k: str(v) if v else None for k, v in latest.items()}, now_ms)
    r.schedule_lag.update(_managed_lags(managed, now_ms))
    _backlogs(r)
    r.table_rows = table_rows()
    if not sources.current().liveness_known:
        r.stuck = r.stranded = None
    return r


def _managed() -> QuerySet[Schedule]:
    """The managed schedules (engine.schedules) and their next tick: epoch ms as text, so the
    rows fit _unfinished's UNION (None while paused: nothing is due)."""
    return Schedule.objects.order_by("name").values_list(
        "name", Cast(Case(When(paused=False, then="next_fire_at")), TextField())
    )[:MAX_QUEUES]


def _managed_lags(managed: dict[str, int | None], now_ms: int) -> dict[str, float]:
    """A managed schedule's lag: how far past its next tick it is, since a worker moves that
    on as soon as it fires the tick (0 when none is due; a paused one is never late)."""
    return {
        name: max(0.0, (now_ms - due) / 1000) for name, due in managed.items() if due is not None
    }


def managed_schedules() -> dict[str, int | None]:
    """name -> next tick (epoch ms; None while paused) of every managed schedule."""
    return {name: _int(due) for name, due in _managed()}


def _unfinished(r: Readings) -> dict[str, int | None]:
    """PENDING and DELAYED: one capped pass over each's rows (one statement for both) gives the
    totals, the split per queue and, for PENDING, who holds them: stuck needs no other scan.
    The managed schedules ride in the same statement (one round trip less); returned as
    ``managed_schedules`` gives them."""
    alive = {e.executor_id for e in r.live}
    parts = []
    for i, status in enumerate((Status.PENDING.value, Status.DELAYED.value)):
        # Ordered as the (status, created_at) index is, so the scan stops at the cap (unordered,
        # the planner may pick a bitmap scan that reads every matching entry first).
        rows = (
            Workflow.objects.filter(status=status)
            .order_by("created_at")
            .values_list("queue_name", "executor_id")[:CAP]
        )
        inner, params = _compiled(rows)
        parts.append(
            (
                f"SELECT {i}, queue_name, executor_id, count(*) FROM ({inner}) AS s{i} "
                "GROUP BY queue_name, executor_id",
                params,
            )
        )
    inner, params = _compiled(_managed())  # type: ignore[arg-type]
    parts.append((f"SELECT 2, s2.*, 0 FROM ({inner}) AS s2", params))
    with connections[sources.alias()].cursor() as cursor:
        cursor.execute(" UNION ALL ".join(p for p, _ in parts), [x for _, ps in parts for x in ps])
        grouped = cursor.fetchall()
    r.unfinished = {Status.PENDING.value: 0, Status.DELAYED.value: 0}
    managed: dict[str, int | None] = {}
    for i, queue_name, executor_id, n in grouped:
        if int(i) == 2:  # a managed schedule: its name and next tick
            managed[queue_name] = _int(executor_id)
            continue
        pending = int(i) == 0
        r.unfinished[Status.PENDING.value if pending else Status.DELAYED.value] += int(n)
        if queue_name is not None:
            queue = r.queues.setdefault(queue_name, QueueReading(queue_name))
            if pending:
                queue.running += int(n)
            else:
                queue.delayed += int(n)
        if pending and executor_id not in alive and r.stuck is not None:
            r.stuck += int(n)
    return managed


def _stranded(live: list[Executor]) -> QuerySet[Workflow]:
    served = sorted({e.application_version for e in live})
    return Workflow.objects.filter(
        status__in=(Status.PENDING.value, Status.ENQUEUED.value),
        application_version__isnull=False,
    ).exclude(application_version__in=served)


def stranded(live: list[Executor]) -> int:
    """PENDING or ENQUEUED workflows of a version no live executor runs (capped), as the
    versions page counts them."""
    return capped(_stranded(live).values("pk"), CAP)


def _oldest_pending() -> QuerySet[Workflow]:
    return (
        Workflow.objects.filter(status=Status.PENDING.value)
        .order_by("created_at")
        .values_list("created_at", flat=True)[:1]
    )


def status_counts(qs: QuerySet[Workflow]) -> dict[str, int]:
    """Workflows by status among the first CAP rows of ``qs`` (in its order)."""
    sql, params = _compiled(qs.values_list("status")[:CAP])
    with connections[sources.alias()].cursor() as cursor:
        cursor.execute(f"SELECT status, count(*) FROM ({sql}) AS capped GROUP BY status", params)
        return {status: int(n) for status, n in cursor.fetchall()}


def queue_names(declared: list[Executor]) -> list[str]:
    """Queues the live executors declare, plus every queue holding ENQUEUED work (a queue nobody
    serves any more is exactly the one whose backlog matters)."""
    names = {spec["name"] for executor in declared for spec in json.loads(executor.queues or "[]")}
    with connections[sources.alias()].cursor() as cursor:
        cursor.execute(_ENQUEUED_QUEUES, [MAX_QUEUES])
        names.update(row[0] for row in cursor.fetchall())
    return sorted(names)[:MAX_QUEUES]


def queue_backlogs(names: list[str]) -> dict[str, tuple[int, int | None]]:
    """Per queue: (ENQUEUED count capped at CAP, created_at of the oldest ENQUEUED or None)."""
    if not names:
        return {}
    ctes, selects, params = [], [], []
    for i, name in enumerate(names):
        ctes.append(_BACKLOG_CTES.format(i=i))
        params += [name, name, name]
    for i, name in enumerate(names):
        selects.append(_BACKLOG_SELECT.format(i=i))
        params += [name, CAP]
    sql = "WITH RECURSIVE " + ",".join(ctes) + "\nUNION ALL".join(selects)
    with connections[sources.alias()].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return {
        names[int(i)]: (int(count), int(oldest) if oldest is not None else None)
        for i, count, oldest in rows
    }


def queue_backlog(name: str) -> tuple[int, int | None]:
    return queue_backlogs([name])[name]


def _backlogs(r: Readings) -> None:
    # ENQUEUED in all is the sum of the queues' backlogs: the engine puts every ENQUEUED
    # workflow on a queue (the internal one, "_waymark", when none is named).
    names = sorted(set(queue_names(r.live)) | set(r.queues))[:MAX_QUEUES]
    for name in sorted(r.queues)[MAX_QUEUES:]:
        del r.queues[name]  # a bounded label set, whatever the data
    for name, (count, oldest) in queue_backlogs(names).items():
        queue = r.queues.setdefault(name, QueueReading(name))
        queue.enqueued, queue.oldest_enqueued_ms = count, oldest
    r.unfinished[Status.ENQUEUED.value] = sum(q.enqueued for q in r.queues.values())


def _cron(cron: str, start: dt.datetime) -> croniter:
    return croniter(cron, start, second_at_beginning=len(cron.split()) == 6)


def _declared_schedules(live: list[Executor]) -> dict[str, tuple[str, int]]:
    """name -> (cron, when the earliest live executor declaring it started), at most 100."""
    declared: dict[str, tuple[str, int]] = {}
    for executor in live:
        for name, cron in json.loads(executor.schedules or "{}").items():
            since = declared.get(name, (cron, executor.started_at))[1]
            declared[name] = (cron, min(since, executor.started_at))
    return dict(sorted(declared.items())[:MAX_QUEUES])


def _latest_tick(name: str) -> QuerySet[Workflow]:
    return (
        Workflow.objects.filter(name=name, workflow_uuid__startswith=f"{name}@")
        .order_by("-created_at")
        .values_list("workflow_uuid", flat=True)[:1]
    )


def schedule_lag(live: list[Executor], now_ms: int) -> dict[str, float]:
    """Per schedule the live executors declare: seconds since the first tick that should have
    run after the latest recorded run and has not (0 when none is due).

    A tick's workflow ID is ``name@<tick ISO time>`` (DESIGN.md), so the latest run says which
    tick it was. A schedule that never ran counts from the earliest live executor declaring it,
    so a daily cron added at noon is not "12 hours late" at once.
    """
    managed = managed_schedules()
    declared = {k: v for k, v in _declared_schedules(live).items() if k not in managed}
    latest = _scalars([_compiled(_latest_tick(name)) for name in declared])
    found = {name: str(v) if v else None for name, v in zip(declared, latest, strict=True)}
    return {**_lags(declared, found, now_ms), **_managed_lags(managed, now_ms)}


def _lags(
    declared: dict[str, tuple[str, int]], latest: dict[str, str | None], now_ms: int
) -> dict[str, float]:
    now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    lags: dict[str, float] = {}
    for name, (cron, started_ms) in declared.items():
        baseline = dt.datetime.fromtimestamp(started_ms / 1000, dt.UTC)
        workflow_id = latest.get(name)
        if workflow_id is not None:
            try:
                baseline = max(baseline, dt.datetime.fromisoformat(workflow_id[len(name) + 1 :]))
            except ValueError:
                pass  # not a tick's ID (started by hand under that prefix): keep the baseline
        try:
            due = _cron(cron, baseline).get_next(dt.datetime)
        except (ValueError, KeyError):
            continue  # a cron this croniter cannot read: the schedules page shows it as text
        lags[name] = max(0.0, (now - due).total_seconds())
    return lags


def table_rows() -> dict[str, float]:
    """Rows per system table, estimated without counting: Postgres' planner statistics
    (pg_class.reltuples, refreshed by autovacuum/ANALYZE; -1, never analyzed, reads as 0);
    on SQLite the largest rowid (exact until rows are deleted, then an upper bound). Nothing for
    a DBOS source: its tables are not the engine's."""
    if sources.current().is_dbos:
        return {}
    connection = connections[sources.alias()]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_ESTIMATES, [list(TABLES)])
            return {name: max(float(n), 0.0) for name, n in cursor.fetchall()}
        # Table names from the models: constants, never user input.
        cursor.execute("SELECT " + ", ".join(f'(SELECT max(rowid) FROM "{t}")' for t in TABLES))
        return {t: float(n or 0) for t, n in zip(TABLES, cursor.fetchone(), strict=True)}
