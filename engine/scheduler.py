"""Scheduled (cron) workflows: one run per tick, however many workers share the database.

Every worker computes the same ticks and starts each with a workflow ID derived from the
workflow name and the tick time; the ID is an idempotency key, so exactly one start wins.
Ticks missed while no worker ran are not replayed (``engine.backfill`` does that on request).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator

from croniter import croniter

log = logging.getLogger("waymark.scheduler")

CRON_FORMAT = (
    "5 fields 'minute hour day month weekday' (e.g. '*/5 * * * *') or 6 with seconds first "
    "'second minute hour day month weekday' (e.g. '*/30 * * * * *')"
)


def validate(expr: str, workflow: str) -> None:
    fields = expr.split() if isinstance(expr, str) else []
    if len(fields) not in (5, 6) or not croniter.is_valid(
        expr, second_at_beginning=len(fields) == 6
    ):
        raise ValueError(f"invalid schedule {expr!r} for workflow {workflow!r}: use {CRON_FORMAT}")


def ticks(expr: str, after: dt.datetime) -> Iterator[dt.datetime]:
    """The schedule's tick times (aware UTC) strictly after ``after``."""
    it = croniter(expr, after.astimezone(dt.UTC), second_at_beginning=len(expr.split()) == 6)
    while True:
        yield it.get_next(dt.datetime).astimezone(dt.UTC)


def tick_workflow_id(name: str, tick: dt.datetime) -> str:
    """The workflow ID of a scheduled workflow's run for one tick: ``name@<ISO tick, UTC>``."""
    return f"{tick_id_prefix(name)}{tick.astimezone(dt.UTC).isoformat()}"


def tick_id_prefix(name: str) -> str:
    """What every tick's workflow ID of the scheduled workflow ``name`` starts with."""
    return f"{name}@"


class Scheduler:
    """One thread: sleeps until the next tick of any scheduled workflow, then starts it."""

    def __init__(
        self,
        schedules: dict[str, str],
        start: Callable[[str, dt.datetime], object],
        stopping: threading.Event,
    ) -> None:
        self._schedules = schedules  # workflow name -> cron expression
        self._start = start
        self._stopping = stopping
        self._thread: threading.Thread | None = None

    def launch(self) -> None:
        if self._schedules:
            self._thread = threading.Thread(
                target=self._loop, name="waymark-scheduler", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        now = dt.datetime.now(dt.UTC)
        upcoming = {name: ticks(expr, now) for name, expr in self._schedules.items()}
        due = {name: next(it) for name, it in upcoming.items()}
        while not self._stopping.is_set():
            name = min(due, key=lambda n: due[n])
            wait = (due[name] - dt.datetime.now(dt.UTC)).total_seconds()
            if wait > 0 and self._stopping.wait(wait):
                return
            try:
                self._start(name, due[name])
            except Exception:
                log.exception(
                    "scheduled start of %s failed",
                    name,
                    extra={"action": "schedule.failed", "workflow": name},
                )
            due[name] = next(upcoming[name])

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
