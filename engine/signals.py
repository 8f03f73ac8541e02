"""In-process wake-ups by key, and the keys themselves (one place for their format).

A waiter registers under its keys *before* checking the database, then sleeps on its event; a
fire between the check and the sleep is therefore never lost. Keys fire from this process
(a local send, cancel, finish) and, on Postgres, from other processes via LISTEN/NOTIFY (the
store sends the same keys as NOTIFY payloads).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Protocol, TypeVar

# Something may wait on any queue (a queue resumed, a limit raised, a dead executor's work
# re-enqueued, another process's freed slot): the worker loop looks at every queue it serves.
ENQUEUED = "enq"
# A run ended or parked here: a workflow thread (and maybe a queue slot) is free again.
FREED = "freed"
# A managed schedule was made, changed or deleted: every scheduler re-reads the schedules now.
SCHEDULES = "schedules"


def enqueued_key(queue_name: str) -> str:
    """A workflow was enqueued here on ``queue_name``: the worker loop claims from that queue
    (not from every queue it serves: a claim is a write, and an empty one is one for nothing)."""
    return f"{ENQUEUED}:{queue_name}"


def message_key(workflow_id: str) -> str:
    """A message was sent to the workflow."""
    return f"msg:{workflow_id}"


def event_key(workflow_id: str) -> str:
    """The workflow published an event."""
    return f"evt:{workflow_id}"


def stop_key(workflow_id: str) -> str:
    """The workflow was cancelled or timed out, or this process is shutting down."""
    return f"stop:{workflow_id}"


def done_key(workflow_id: str) -> str:
    """The workflow's execution here ended."""
    return f"done:{workflow_id}"


def stream_key(workflow_id: str, key: str) -> str:
    """The workflow wrote to (or closed) its stream ``key``."""
    return f"stream:{workflow_id}:{key}"


def step_key(workflow_id: str) -> str:
    """A ``ctx.go`` step of the workflow completed (wakes a ``select``)."""
    return f"step:{workflow_id}"


class Settable(Protocol):
    """What a waiter registers: a ``threading.Event``, or an async workflow's wake-up."""

    def set(self) -> None: ...


S = TypeVar("S", bound=Settable)


class Signals:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Settable]] = {}

    @contextlib.contextmanager
    def watch(self, *keys: str) -> Iterator[threading.Event]:
        with self.watch_with(threading.Event(), *keys) as event:
            yield event

    @contextlib.contextmanager
    def watch_with(self, event: S, *keys: str) -> Iterator[S]:
        with self._lock:
            for key in keys:
                self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                for key in keys:
                    waiters = self._waiters.get(key)
                    if waiters is not None:
                        waiters.discard(event)
                        if not waiters:
                            del self._waiters[key]

    def fire(self, key: str) -> None:
        with self._lock:
            found = self._waiters.get(key)
            if not found:
                return
            waiters = list(found)
        for event in waiters:
            event.set()
