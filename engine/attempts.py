"""Step attempts and tracebacks: every failed attempt of a step is recorded (one insert per
failure, never on the success path), and a failed workflow keeps its traceback.

Tracebacks are text capped at ``MAX_TRACEBACK_BYTES`` (UTF-8): the end of a traceback (the
innermost frames and the exception) is what an operator needs, so a long one keeps its tail.
"""

from __future__ import annotations

import dataclasses
import traceback as tb
from collections.abc import Callable

from engine import clock, rows, serialization
from engine.records import AttemptInfo, StepInfo, WorkflowStatus
from engine.store import Store, records

MAX_TRACEBACK_BYTES = 65_536
TRUNCATED = "... (traceback truncated to its last 64 KB)\n"

# Called when an attempt of a step fails: (the exception, when the attempt started, epoch ms).
OnFailure = Callable[[BaseException, int], None]


def format_traceback(exc: BaseException) -> str:
    """The exception's traceback as text, at most ``MAX_TRACEBACK_BYTES`` bytes of UTF-8."""
    text = "".join(tb.format_exception(exc))
    return cap(text)


def cap(text: str) -> str:
    data = text.encode("utf-8", errors="replace")
    if len(data) <= MAX_TRACEBACK_BYTES:
        return text
    keep = MAX_TRACEBACK_BYTES - len(TRUNCATED.encode())
    # Cut on a character boundary: drop a partial leading UTF-8 sequence.
    tail = data[-keep:].decode("utf-8", errors="ignore")
    return TRUNCATED + tail


class Recorder:
    """Records the failed attempts of one workflow's steps."""

    def __init__(self, store: Store, workflow_id: str) -> None:
        self._store = store
        self._workflow_id = workflow_id

    def for_step(self, step_id: int) -> OnFailure:
        def failed(exc: BaseException, started: int) -> None:
            self._store.attempts.record_attempt(
                records.NewAttempt(
                    workflow_id=self._workflow_id,
                    step_id=step_id,
                    error=serialization.encode_error(exc),
                    traceback=format_traceback(exc),
                    started=started,
                    completed=clock.now_ms(),
                )
            )

        return failed


def attempt_info(workflow_id: str, row: records.AttemptRow) -> AttemptInfo:
    what = f"attempt {row.attempt} of step {row.step_id} of workflow {workflow_id!r}"
    return AttemptInfo(
        attempt=row.attempt,
        error=rows.error_of(row.error, f"the error of {what}"),
        traceback=row.traceback,
        started_at=rows.from_ms(row.started_at),
        completed_at=rows.from_ms(row.completed_at),
    )


def list_attempts(store: Store, workflow_id: str, step_id: int) -> list[AttemptInfo]:
    return [
        attempt_info(workflow_id, row) for row in store.attempts.list_attempts(workflow_id, step_id)
    ]


def with_attempts(store: Store, workflow_id: str, steps: list[records.StepRow]) -> list[StepInfo]:
    """The steps as ``StepInfo``s with their attempt counts and tracebacks (one extra read for
    all of them, on inspection only)."""
    failed: dict[int, list[records.AttemptRow]] = {}
    for row in store.attempts.list_attempts(workflow_id, None) if steps else ():
        failed.setdefault(row.step_id, []).append(row)
    found = []
    for step in steps:
        info = rows.step_info(workflow_id, step)
        attempts = failed.get(step.step_id, [])
        if attempts or info.error is not None:
            errored = info.error is not None
            count = len(attempts) if errored else len(attempts) + 1
            last = attempts[-1].traceback if errored and attempts else None
            info = dataclasses.replace(info, attempts=max(count, 1), traceback=last)
        found.append(info)
    return found


def with_tracebacks(store: Store, statuses: list[WorkflowStatus]) -> list[WorkflowStatus]:
    """The statuses with the tracebacks of those that failed (one read, failures only)."""
    failed = [s.workflow_id for s in statuses if s.error is not None]
    if not failed:
        return statuses
    found = store.attempts.workflow_tracebacks(failed)
    return [
        dataclasses.replace(s, traceback=found[s.workflow_id]) if s.workflow_id in found else s
        for s in statuses
    ]
