"""Cron ticks, and the scheduler: one run per tick, however many workers share the database.

The schedules live in the database (``schedules``, engine.schedules), so a pause made by any
process holds on every worker. Each worker's scheduler re-reads them every REFRESH_S (sooner
when one changes: a wake-up here, a NOTIFY on Postgres), and fires a due tick by starting the
workflow with an ID derived from the schedule's name and the tick time; the ID is an
idempotency key, so exactly one start wins. Then it moves the schedule's ``next_fire_at`` on,
conditionally, so only one worker does. Ticks missed by more than CATCH_UP_S while no worker
ran are not replayed (``backfill_schedule`` does that on request).

Time zones: the cron is read on the wall clock of the schedule's IANA zone. A wall time the
clock skips (DST starts) fires once, shifted forward by the gap (02:30 -> 03:30); a wall time it
repeats (DST ends) fires once, at its first occurrence.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from croniter import croniter

from engine import clock, rows
from engine import signals as keys
from engine.store import Store
from engine.wakeups import Wakeups

log = logging.getLogger("waymark.scheduler")

CRON_FORMAT = (
    "5 fields 'minute hour day month weekday' (e.g. '*/5 * * * *') or 6 with seconds first "
    "'second minute hour day month weekday' (e.g. '*/30 * * * * *')"
)
REFRESH_S = 1.0  # how stale a worker's view of the schedules may be
CATCH_UP_S = 60.0  # a tick later than this (no worker ran) is skipped, not fired late
MAX_DST_GAP = dt.timedelta(hours=3)  # wider than any zone's clock jump


class Start(Protocol):
    def __call__(self, workflow_name: str, input: Any, workflow_id: str, queue: str | None) -> Any:
        """Start (idempotently, by ``workflow_id``) one run of a schedule's workflow."""


def validate(expr: str, workflow: str, what: str = "workflow") -> None:
    fields = expr.split() if isinstance(expr, str) else []
    if len(fields) not in (5, 6) or not croniter.is_valid(
        expr, second_at_beginning=len(fields) == 6
    ):
        raise ValueError(f"invalid schedule {expr!r} for {what} {workflow!r}: use {CRON_FORMAT}")


def zone(name: Any, schedule: str) -> dt.tzinfo:
    """The IANA time zone ``name``; ValueError naming it and the fix when it is not one."""
    fix = "use an IANA time zone name such as 'UTC', 'Europe/Paris' or 'America/New_York'"
    if not isinstance(name, str) or not name:
        raise ValueError(f"time zone {name!r} of schedule {schedule!r} is not a name; {fix}")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} for schedule {schedule!r}; {fix}") from None


def ticks(expr: str, after: dt.datetime, tz: dt.tzinfo = dt.UTC) -> Iterator[dt.datetime]:
    """The schedule's tick times (aware UTC) strictly after ``after``, in order, each once;
    the cron is read on ``tz``'s wall clock (DST as the module says)."""
    six = len(expr.split()) == 6
    after = after.astimezone(dt.UTC)
    if tz is dt.UTC:
        it = croniter(expr, after, second_at_beginning=six)
        while True:
            yield it.get_next(dt.datetime).astimezone(dt.UTC)
    # Wall-clock ticks (naive), each mapped to UTC with fold=0: a skipped wall time takes the
    # offset before the jump (shifted forward by the gap), a repeated one its first occurrence.
    # Skipped wall times map onto instants later wall times map to again, and a start inside a
    # repeated hour reads earlier wall times: keep only instants past the last. Just after the
    # clocks jumped forward, the skipped wall times (behind the wall clock now) still map to
    # instants ahead: start that much earlier (only then: a per-second cron would otherwise
    # walk hours of wall time on every call).
    jump = after.astimezone(tz).utcoffset() or dt.timedelta()
    before = (after - MAX_DST_GAP).astimezone(tz).utcoffset() or dt.timedelta()
    start = after.astimezone(tz).replace(tzinfo=None) - max(dt.timedelta(), jump - before)
    it = croniter(expr, start, second_at_beginning=six)
    last = after
    while True:
        wall = it.get_next(dt.datetime)
        tick = wall.replace(tzinfo=tz).astimezone(dt.UTC)
        if tick > last:
            last = tick
            yield tick


def ticks_between(expr: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The schedule's UTC tick times in [start, end) (a ``schedule=`` workflow's backfill)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware datetimes")
    found = []
    for tick in ticks(expr, start - dt.timedelta(microseconds=1)):
        if tick >= end:
            break
        found.append(tick)
    return found


def tick_workflow_id(name: str, tick: dt.datetime) -> str:
    """The workflow ID of a schedule's run for one tick: ``name@<ISO tick, UTC>``."""
    return f"{tick_id_prefix(name)}{tick.astimezone(dt.UTC).isoformat()}"


def tick_id_prefix(name: str) -> str:
    """What every run's workflow ID of the schedule ``name`` starts with."""
    return f"{name}@"


def tick_input(workflow_id: str, input: object) -> object:
    """A run's input as the workflow receives it: a tick (stored as ISO text) is handed back
    as a datetime when the run is a schedule's (its ID ends with ``@<that text>``)."""
    if isinstance(input, str) and workflow_id.endswith(f"@{input}"):
        try:
            return dt.datetime.fromisoformat(input)
        except ValueError:
            return input
    return input


class Scheduler:
    """One thread: fires the due ticks of the schedules whose workflow this engine runs."""

    def __init__(
        self,
        store: Store,
        wakeups: Wakeups,
        start: Start,
        runs: Callable[[str], bool],
        stopping: threading.Event,
    ) -> None:
        """``start``: how this engine starts a run; ``runs(workflow_name)``: whether this
        engine has that workflow registered."""
        self._store = store
        self._wakeups = wakeups
        self._start = start
        self._runs = runs
        self._stopping = stopping
        self._thread: threading.Thread | None = None

    def launch(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="waymark-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        with self._wakeups.watch(keys.SCHEDULES) as changed:
            while not self._stopping.is_set():
                try:
                    wait = self.run_once()
                except Exception:  # the database is away for longer than the store retries
                    log.exception("scheduler pass failed", extra={"action": "schedule.error"})
                    wait = REFRESH_S
                changed.wait(wait)
                changed.clear()

    def run_once(self) -> float:
        """Fire every due tick; seconds until the next one (at most REFRESH_S)."""
        now_ms = clock.now_ms()
        wait = REFRESH_S
        for row in self._store.ready().schedules.list_schedules():
            if self._stopping.is_set():
                break
            if row["paused"] or row["next_fire_at"] is None or not self._runs(row["workflow_name"]):
                continue
            due_ms = int(row["next_fire_at"])
            if due_ms > now_ms:
                wait = min(wait, (due_ms - now_ms) / 1000)
                continue
            if self._fire(row, due_ms, now_ms):
                wait = 0.0  # look again at once: the next tick may be due (a per-second cron)
        return max(wait, 0.0)

    def _fire(self, row: Any, due_ms: int, now_ms: int) -> bool:
        """Fire the tick ``due_ms`` (unless long past) and move the schedule on; False when
        the row cannot be read (a time zone or cron written by hand that is not one)."""
        name = row["name"]
        due, now = dt.datetime.fromtimestamp(due_ms / 1000, dt.UTC), rows.from_ms(now_ms)
        assert now is not None
        reach = now - dt.timedelta(seconds=CATCH_UP_S)
        try:
            later = ticks(row["cron"], due, zone(row["timezone"], name))
            following = next(later)
            while following < reach:  # ticks long past (no worker ran): not replayed
                following = next(later)
        except (ValueError, KeyError) as exc:
            log.error(
                "schedule %s cannot be read: %s",
                name,
                exc,
                extra={"action": "schedule.invalid", "schedule": name},
            )
            return False
        fired_ms = None
        if due >= reach:
            fired_ms = due_ms
            try:
                workflow_id = tick_workflow_id(name, due)
                self._start(row["workflow_name"], due, workflow_id, row["queue"])
            except Exception:  # logged, and the schedule moves on: a bad tick must not loop
                if self._stopping.is_set():
                    return False  # shutting down: another worker (or the next launch) fires it
                log.exception(
                    "scheduled start of %s failed",
                    name,
                    extra={"action": "schedule.failed", "schedule": name},
                )
        else:
            log.warning(
                "schedule %s skipped the tick %s: no worker ran it in time",
                name,
                due.isoformat(),
                extra={"action": "schedule.skipped", "schedule": name},
            )
        next_ms = int(following.timestamp() * 1000)
        self._store.schedules.advance_schedule(name, due_ms, fired_ms, next_ms)
        return True

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
