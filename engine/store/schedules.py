"""Managed schedules (0009_schedules): the rows the schedulers fire from; a change wakes every
scheduler.

Owned by the store as ``store.schedules``; it gets the store's primitives explicitly.
"""

from __future__ import annotations

from typing import Any

from engine import clock, signals
from engine.store import statements


class Schedules:
    def __init__(
        self,
        *,
        write: statements.Write,
        write_together: statements.WriteTogether,
        rows: statements.Rows,
        row: statements.Row,
        notify: statements.Notify,
    ) -> None:
        self._write = write
        self._write_together = write_together
        self._rows = rows
        self._row = row
        self._notify = notify

    def _schedule_change(self, query: str, params: dict[str, Any]) -> bool:
        """One schedule write that wakes every scheduler (NOTIFY on Postgres); True when it
        matched the schedule."""
        rows, *_ = self._write_together((query, params), *self._notify(signals.SCHEDULES))
        return bool(rows)

    def upsert_schedule(
        self,
        name: str,
        workflow_name: str,
        cron: str,
        timezone: str,
        queue: str | None,
        next_fire_at: int,
    ) -> None:
        params = {
            "name": name,
            "workflow_name": workflow_name,
            "cron": cron,
            "timezone": timezone,
            "queue": queue,
            "next_fire_at": next_fire_at,
            "now": clock.now_ms(),
        }
        self._schedule_change("upsert_schedule", params)

    def get_schedule(self, name: str) -> Any | None:
        return self._row("get_schedule", {"name": name})

    def list_schedules(self) -> list[Any]:
        return self._rows("list_schedules", {})

    def pause_schedule(self, name: str) -> bool:
        return self._schedule_change("pause_schedule", {"name": name, "now": clock.now_ms()})

    def resume_schedule(self, name: str, next_fire_at: int) -> bool:
        params = {"name": name, "next_fire_at": next_fire_at, "now": clock.now_ms()}
        return self._schedule_change("resume_schedule", params)

    def delete_schedule(self, name: str) -> bool:
        return self._schedule_change("delete_schedule", {"name": name})

    def advance_schedule(
        self, name: str, expected: int, fired_at: int | None, next_fire_at: int
    ) -> bool:
        """Move the schedule past the tick ``expected`` it fired; False when another worker
        (or a change to the schedule) moved it first."""
        params = {
            "name": name,
            "expected": expected,
            "fired_at": fired_at,
            "next_fire_at": next_fire_at,
        }
        return bool(self._write("advance_schedule", params))

    def schedule_fired(self, name: str, fired_at: int) -> None:
        self._write("schedule_fired", {"name": name, "fired_at": fired_at})
