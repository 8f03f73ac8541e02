"""Records the engine hands out: frozen dataclasses, the ``Status`` enum and its sets.

The status sets are the one definition of which statuses mean what (the console imports them
rather than repeat the strings).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    PENDING = "PENDING"
    ENQUEUED = "ENQUEUED"
    DELAYED = "DELAYED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


# Ended for good: nothing runs it again unless an operator resumes (or forks) it.
FINAL_STATUSES = frozenset(
    {Status.SUCCESS, Status.ERROR, Status.CANCELLED, Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED}
)
# Not ended: running (PENDING) or waiting to run (on a queue, or for its start time).
UNFINISHED_STATUSES = frozenset({Status.PENDING, Status.ENQUEUED, Status.DELAYED})
# Waiting to be claimed by a worker.
WAITING_STATUSES = frozenset({Status.ENQUEUED, Status.DELAYED})
# What cancel_workflow acts on (a cancel of any other status does nothing).
CANCELLABLE_STATUSES = UNFINISHED_STATUSES
# What resume_workflow acts on: stopped or set aside, or stuck on a queue.
RESUMABLE_STATUSES = frozenset(
    {Status.CANCELLED, Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED, Status.ENQUEUED}
)


@dataclass(frozen=True)
class WorkflowStatus:
    workflow_id: str
    status: Status
    name: str
    input: Any
    output: Any
    error: dict[str, str] | None
    created_at: dt.datetime
    updated_at: dt.datetime
    application_version: str | None
    executor_id: str | None
    queue_name: str | None
    timeout: float | None
    deadline: dt.datetime | None
    recovery_attempts: int
    parent_workflow_id: str | None
    forked_from: str | None
    # The failure's traceback (capped at 64 KB), None unless it ended in ERROR with one.
    traceback: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    partition_key: str | None = None


@dataclass(frozen=True)
class QueueInfo:
    """A queue as ``list_queues`` reports it: its effective settings (declared, overridden by
    ``set_queue_limits``) and its unfinished work."""

    name: str
    paused: bool
    concurrency: int | None
    worker_concurrency: int | None
    rate_limit: tuple[int, float] | None
    partition_concurrency: int | None
    enqueued: int
    running: int
    delayed: int
    oldest_enqueued_at: dt.datetime | None


@dataclass(frozen=True)
class StepInfo:
    step_id: int
    name: str
    output: Any
    error: dict[str, str] | None
    child_workflow_id: str | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    attempts: int = 1  # how many attempts ran (1 when the first succeeded)
    traceback: str | None = None  # the last failed attempt's, when the step ended in error


@dataclass(frozen=True)
class AttemptInfo:
    """A failed attempt of a step (``engine.list_attempts``), numbered from 1."""

    attempt: int
    error: dict[str, str] | None
    traceback: str | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None


@dataclass(frozen=True)
class ScheduleInfo:
    """A managed schedule as ``list_schedules`` reports it. ``next_fire_at``: the next tick a
    worker fires (None while paused); ``last_fire_at``: the latest tick fired or run triggered."""

    name: str
    workflow_name: str
    cron: str
    timezone: str
    paused: bool
    next_fire_at: dt.datetime | None
    last_fire_at: dt.datetime | None
    queue: str | None = None
