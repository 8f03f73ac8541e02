"""What a PENDING workflow waits on: recorded when a wait starts, cleared when it ends.

A wait is written only when a workflow actually blocks (a message not there yet, an event not
set, a child not finished, a sleep), never on the step path: one write as it starts, and one
as it ends when the workflow waited in place. The record is self-describing so that a reader
can tell a stale one (an execution that crashed mid-wait, or a parked workflow just woken,
whose wake-up writes nothing: a new wait overwrites the record, the final status write clears
it): ``step`` is the step that ends the wait (once that step is recorded, or ``until`` passed
for a sleep, the wait is over).

Stored as JSON in ``workflow_status.waiting``:
``{"kind": "sleep"|"message"|"event"|"child"|"step", "step": n, "since": ms, "until": ms|null,
"topic": str|null, "key": str|null, "workflow_id": str|null}`` (``workflow_id``: the workflow
whose event, or the child whose result, is awaited).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from engine import clock

SLEEP = "sleep"
MESSAGE = "message"
EVENT = "event"
CHILD = "child"
STEP = "step"  # a select() on steps running with ctx.go
KINDS = frozenset({SLEEP, MESSAGE, EVENT, CHILD, STEP})


@dataclass(frozen=True)
class Wait:
    kind: str
    step: int
    since_ms: int
    until_ms: int | None = None
    topic: str | None = None
    key: str | None = None
    workflow_id: str | None = None

    @property
    def since(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.since_ms / 1000, tz=dt.UTC)

    @property
    def until(self) -> dt.datetime | None:
        if self.until_ms is None:
            return None
        return dt.datetime.fromtimestamp(self.until_ms / 1000, tz=dt.UTC)

    def encode(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "step": self.step,
                "since": self.since_ms,
                "until": self.until_ms,
                "topic": self.topic,
                "key": self.key,
                "workflow_id": self.workflow_id,
            },
            separators=(",", ":"),
        )


def new(kind: str, step: int, **details: Any) -> Wait:
    assert kind in KINDS, kind
    return Wait(kind, step, clock.now_ms(), **details)


def decode(text: str | None) -> Wait | None:
    """The recorded wait, or None (none recorded, or unreadable: a reader falls back)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        kind, step, since = data["kind"], data["step"], data["since"]
        if kind not in KINDS or not isinstance(step, int) or not isinstance(since, int):
            return None
        until = data.get("until")
        return Wait(
            kind,
            step,
            since,
            until_ms=until if isinstance(until, int) else None,
            topic=_text(data.get("topic")),
            key=_text(data.get("key")),
            workflow_id=_text(data.get("workflow_id")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def is_current(wait: Wait, last_step: int | None, now_ms: int) -> bool:
    """Whether a recorded wait still holds: its ending step is not recorded yet and, for a
    sleep, its wake-up time has not passed."""
    if last_step is not None and last_step >= wait.step:
        return False
    return not (wait.kind == SLEEP and wait.until_ms is not None and wait.until_ms <= now_ms)
