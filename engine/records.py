"""Records the engine hands out: frozen dataclasses and the ``Status`` enum."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
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


FINAL_STATUSES = frozenset(
    {Status.SUCCESS, Status.ERROR, Status.CANCELLED, Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED}
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


@dataclass(frozen=True)
class StepInfo:
    step_id: int
    name: str
    output: Any
    error: dict[str, str] | None
    child_workflow_id: str | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
