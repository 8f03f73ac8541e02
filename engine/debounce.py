"""Debouncing: one workflow per burst of calls, started with the burst's latest input.

``engine.debouncer(fn, period=5)`` makes a ``Debouncer``; ``debouncer.debounce(key, input)``
starts ``fn`` with ``input`` once ``period`` seconds pass with no other debounce of ``key``
(or ``max_wait`` seconds after the burst's first debounce, whichever comes first).

A burst lives in the database, not in this process, so it survives a crash and is shared by
every process: it is one DELAYED workflow row carrying the key (``debounce_key``; a partial
unique index lets each workflow name have one unstarted row per key). Each debounce, in one
conditional UPDATE, replaces that row's input and pushes its start forward; the worker's
promotion of due delayed rows then starts it like any delayed workflow. A debounce that finds
no unstarted row (the first, or one racing the row's start) opens a new burst: a new row
(engine.admission, the one place rows are created). So every handle returned during one
burst names the same workflow, and a burst started by a process that then crashed is started
by any live worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from engine import errors
from engine.admission import Admission, seconds
from engine.async_context import current_async
from engine.context import current_context
from engine.handle import WorkflowHandle
from engine.queues import Queue

MAX_KEY_CHARS = 200


def period_ms(period: Any, what: str = "period") -> int:
    """A period in whole milliseconds, > 0."""
    value = seconds(period, what)
    if value <= 0 or int(value * 1000) < 1:
        raise ValueError(f"{what} must be > 0 seconds (at least 1 ms), got {period!r}")
    return int(value * 1000)


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise TypeError(
            f"debounce key must be a non-empty string of at most {MAX_KEY_CHARS} characters, "
            f"got {key!r}; pass e.g. str(user_id)"
        )
    return key


class Debouncer:
    """Debounces starts of the workflow registered as ``name`` (see the module docstring).

    ``admission`` creates and joins the burst rows; ``handle`` makes a handle of a workflow
    ID; ``refuse_here`` raises when the caller may not debounce (inside a workflow body,
    where the call would not be recorded, or on an engine that was shut down).
    """

    def __init__(
        self,
        name: str,
        *,
        period: float | dt.timedelta,
        max_wait: float | dt.timedelta | None,
        queue: Queue | str | None,
        admission: Admission,
        handle: Callable[[str], WorkflowHandle],
        refuse_here: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.period_ms = period_ms(period)
        self.max_wait_ms = period_ms(max_wait, "max_wait") if max_wait is not None else None
        if self.max_wait_ms is not None and self.max_wait_ms < self.period_ms:
            raise ValueError(
                f"max_wait ({max_wait!r}) must be >= period ({period!r}): a burst may not be "
                "cut shorter than one period; raise max_wait or pass None for no cap"
            )
        self.queue = admission.queue_of(queue)  # an engine's must be declared: checked now
        self._admission = admission
        self._handle = handle
        self._refuse_here = refuse_here

    def __repr__(self) -> str:
        cap = f", max_wait={self.max_wait_ms / 1000:g}" if self.max_wait_ms is not None else ""
        return f"<Debouncer {self.name!r} period={self.period_ms / 1000:g}{cap}>"

    def debounce(self, key: str, input: Any = None) -> WorkflowHandle:
        """Add ``input`` to the burst of ``key`` (opening one if none waits); the handle of
        the burst's workflow, which starts with the burst's latest input."""
        check_key(key)
        self._refuse_here()
        workflow_id = self._admission.debounce(
            self.name,
            key,
            input,
            period_ms=self.period_ms,
            max_wait_ms=self.max_wait_ms,
            queue=self.queue,
        )
        return self._handle(workflow_id)

    async def debounce_async(self, key: str, input: Any = None) -> WorkflowHandle:
        """``debounce`` from async code, without blocking the event loop."""
        check_key(key)
        self._refuse_here()
        return await asyncio.to_thread(self.debounce, key, input)


def engine_guard(results: object, stopping: threading.Event) -> Callable[[], None]:
    """What an engine's Debouncer refuses: a debounce straight from a workflow body of the
    engine whose ``results`` it is (no step records it, so every replay would debounce again),
    and a debounce once the engine is shut down (``stopping``)."""

    def refuse() -> None:
        actx, ctx = current_async(), current_context()
        if (actx is not None and actx.records_for(results)) or (
            ctx is not None and ctx.records_for(results)
        ):
            raise errors.EngineError(
                "debounce() from a workflow body is not recorded and would repeat on replay; "
                "call it from a step (a function decorated with engine.step())"
            )
        if stopping.is_set():
            raise errors.EngineError("the engine is shut down; create a new Engine to debounce")

    return refuse
