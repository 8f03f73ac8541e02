"""Managed schedules: made, paused, resumed, deleted, triggered and backfilled at run time.

They live in ``schedules`` (migration 0009), so a change made by any process (an engine, a
``Client``, the console) holds on every worker within a second (engine.scheduler fires them).
The calls are the same on an engine and a client; they differ in how a workflow is known and
started (an engine's registry and start; a client's database and queue). Every argument is
checked before anything is written: bad input raises, naming the value and the fix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from engine import errors, registry, rows, scheduler
from engine import signals as keys
from engine.handle import WorkflowHandle
from engine.records import ScheduleInfo
from engine.store import Store
from engine.wakeups import Wakeups

MAX_BACKFILL = 10_000  # ticks one backfill may start (a cron over a wide range is a mistake)
NAME_LIMIT = 200


@dataclasses.dataclass(frozen=True)
class Knows:
    """What the process can tell about workflows and queues.

    ``workflow(fn_or_name) -> name`` raises when it is not a workflow a schedule can run;
    ``queue(name)`` raises when the queue is not one this process can start on."""

    workflow: Callable[[Any], str]
    queue: Callable[[str], None]


def registered(workflows: registry.Registry) -> Knows:
    """An engine knows its registered workflows (a schedule's must accept the tick) and its
    declared queues."""

    def workflow(fn_or_name: Any) -> str:
        definition = workflows.resolve(fn_or_name)
        if not definition.takes_input:
            raise errors.EngineError(
                f"workflow {definition.name!r} cannot be scheduled: it must accept the tick "
                "time, def wf(ctx, tick)"
            )
        return definition.name

    def queue(name: str) -> None:
        if name not in workflows.queues:
            raise errors.EngineError(f"unknown queue {name!r}; declare it with engine.queue()")

    return Knows(workflow, queue)


def _info(row: Any) -> ScheduleInfo:
    paused = bool(row["paused"])
    return ScheduleInfo(
        name=row["name"],
        workflow_name=row["workflow_name"],
        cron=row["cron"],
        timezone=row["timezone"],
        paused=paused,
        next_fire_at=None if paused else rows.from_ms(row["next_fire_at"]),
        last_fire_at=rows.from_ms(row["last_fire_at"] or None),
        queue=row["queue"],
    )


def first_tick_ms(cron: str, tz: dt.tzinfo, after: dt.datetime | None = None) -> int:
    """Epoch ms of the cron's first tick after ``after`` (default: now)."""
    tick = next(scheduler.ticks(cron, after or dt.datetime.now(dt.UTC), tz))
    return int(tick.timestamp() * 1000)


class Schedules:
    def __init__(
        self, store: Store, wakeups: Wakeups, start: scheduler.Start, knows: Knows
    ) -> None:
        self._store = store
        self._wakeups = wakeups
        self._start = start
        self._knows = knows

    # -- checks (before anything is written) -------------------------------------------------

    @staticmethod
    def _name(name: Any) -> str:
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_LIMIT:
            raise ValueError(
                f"a schedule name must be a non-empty string of at most {NAME_LIMIT} "
                f"characters, got {name!r}"
            )
        if "@" in name:
            raise ValueError(
                f"schedule name {name!r} contains '@', which separates the name from the tick "
                "in a run's workflow ID; choose a name without it"
            )
        return name

    def _row(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise ValueError(f"a schedule name must be a string, got {name!r}")
        row = self._store.ready().schedules.get_schedule(name)
        if row is None:
            known = [r["name"] for r in self._store.schedules.list_schedules()]
            raise errors.EngineError(
                f"unknown schedule {name!r}; create it with create_schedule() (known "
                f"schedules: {', '.join(known[:20]) or 'none'})"
            )
        return row

    # -- control -------------------------------------------------------------------------------

    def create(
        self, name: str, workflow: Any, cron: str, timezone: str = "UTC", queue: str | None = None
    ) -> None:
        """Create the schedule, or update the one of that name in place (a pause holds)."""
        name = self._name(name)
        scheduler.validate(cron, name, "schedule")
        tz = scheduler.zone(timezone, name)
        workflow_name = self._knows.workflow(workflow)
        if queue is not None:
            if not isinstance(queue, str) or not queue:
                raise ValueError(f"queue must be a queue's name or None, got {queue!r}")
            self._knows.queue(queue)
        self._store.ready().schedules.upsert_schedule(
            name, workflow_name, cron, timezone, queue, first_tick_ms(cron, tz)
        )
        self._wakeups.fire(keys.SCHEDULES)

    def pause(self, name: str) -> None:
        """The schedule fires no tick on any worker until resumed (runs in flight continue)."""
        self._row(name)
        self._store.schedules.pause_schedule(name)
        self._wakeups.fire(keys.SCHEDULES)

    def resume(self, name: str) -> None:
        """It fires again from its next tick; ticks passed while paused are not fired."""
        row = self._row(name)
        next_ms = first_tick_ms(row["cron"], scheduler.zone(row["timezone"], name))
        self._store.schedules.resume_schedule(name, next_ms)
        self._wakeups.fire(keys.SCHEDULES)

    def delete(self, name: str) -> None:
        """No more ticks; the runs it started are kept."""
        self._row(name)
        self._store.schedules.delete_schedule(name)
        self._wakeups.fire(keys.SCHEDULES)

    def trigger(self, name: str) -> WorkflowHandle:
        """A run now, outside the ticks (also while paused); its input is the trigger time."""
        row = self._row(name)
        now = dt.datetime.now(dt.UTC)
        # Ends with "@<input>" like a tick's ID, so the run receives a datetime; the random
        # part keeps two triggers apart (a trigger is not idempotent; a tick is).
        workflow_id = f"{name}@trigger-{uuid.uuid4().hex[:8]}@{now.isoformat()}"
        handle: WorkflowHandle = self._start(row["workflow_name"], now, workflow_id, row["queue"])
        self._store.schedules.schedule_fired(name, int(now.timestamp() * 1000))
        return handle

    def backfill(self, name: str, start: dt.datetime, end: dt.datetime) -> list[WorkflowHandle]:
        """A run for every tick with ``start <= tick < end`` (in the schedule's time zone); a
        tick that already ran is not run again (each tick has one workflow ID)."""
        row = self._row(name)
        for value, what in ((start, "start"), (end, "end")):
            if not isinstance(value, dt.datetime) or value.tzinfo is None:
                raise ValueError(
                    f"backfill {what}={value!r} must be a timezone-aware datetime, e.g. "
                    "datetime(2026, 1, 1, tzinfo=datetime.UTC)"
                )
        if end <= start:
            raise ValueError(
                f"backfill end {end.isoformat()} is not after start {start.isoformat()}; "
                "give start < end (ticks with start <= tick < end run)"
            )
        tz = scheduler.zone(row["timezone"], name)
        due = []
        for tick in scheduler.ticks(row["cron"], start - dt.timedelta(microseconds=1), tz):
            if tick >= end:
                break
            due.append(tick)
            if len(due) > MAX_BACKFILL:
                raise ValueError(
                    f"backfill of schedule {name!r} from {start.isoformat()} to "
                    f"{end.isoformat()} covers more than {MAX_BACKFILL} ticks; narrow the range"
                )
        workflow, queue = row["workflow_name"], row["queue"]
        return [
            self._start(workflow, tick, scheduler.tick_workflow_id(name, tick), queue)
            for tick in due
        ]

    # -- inspection ----------------------------------------------------------------------------

    def list(self) -> list[ScheduleInfo]:
        return [_info(row) for row in self._store.ready().schedules.list_schedules()]

    def sync(self, declared: dict[str, str]) -> None:
        """Create or update the schedules given at registration (``{workflow name: cron}``),
        each named after its workflow, in UTC; an operator's pause holds."""
        store = self._store.ready()
        for workflow_name, cron in declared.items():
            next_ms = first_tick_ms(cron, dt.UTC)
            store.schedules.upsert_schedule(
                workflow_name, workflow_name, cron, "UTC", None, next_ms
            )
