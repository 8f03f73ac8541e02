"""Waking a parked wait: a workflow parked in ``recv``, ``get_event``, awaiting a child, or a
long sleep holds no thread; one of these wakes it exactly once.

What wakes it: its wake-up time (a timer), a signal on one of its keys (in this process, or
from another via LISTEN/NOTIFY on Postgres), or a poll of its ``ready()`` check and its status
for changes other processes cannot push (SQLite; a child's end elsewhere). The poll backs off,
from the store's poll interval to POLL_MAX_S, so ten thousand long waits cost little.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from engine import clock
from engine.records import Status
from engine.store import Store
from engine.timers import Timers
from engine.wakeups import Wakeups

POLL_MAX_S = 10.0


class Waker:
    """Wakes one parked workflow once: ``set()`` (from a signal, a timer, a poll) hands
    ``wake`` to ``submit`` the first time and forgets the rest."""

    def __init__(
        self,
        workflow_id: str,
        wake: Callable[[], None],
        submit: Callable[[Callable[[], None]], None],
    ) -> None:
        self._workflow_id = workflow_id
        self._wake = wake
        self._submit = submit
        self._lock = threading.Lock()
        self._fired = False
        self._watch: contextlib.ExitStack | None = None

    @property
    def fired(self) -> bool:
        return self._fired

    def set(self) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
            watch, self._watch = self._watch, None
        if watch is not None:
            self._submit(watch.close)  # not here: a signal's fire may be calling us
        self._submit(self._wake)

    def arm(
        self,
        wakeups: Wakeups,
        timers: Timers,
        store: Store,
        wake_at: int | None,
        keys: tuple[str, ...],
        ready: Callable[[], bool] | None,
        keep_polling: bool = True,
    ) -> None:
        """Watch ``keys`` first, then check ``ready()`` once (a change between the park and
        the watch is not lost), then, when ``keep_polling``, poll it with backoff (a change that
        nothing pushes: SQLite across processes, a child ending elsewhere)."""
        if wake_at is not None:
            timers.at(wake_at, self.set)
        if not keys:
            return
        stack = contextlib.ExitStack()
        stack.enter_context(wakeups.watch_with(self, *keys))
        with self._lock:
            if self._fired:
                stack.close()
                return
            self._watch = stack
        wakeups.listen()
        if ready is None:
            return
        workflow_id = self._workflow_id

        def poll(interval: float, first: bool) -> None:
            if self._fired:
                return
            found = ready()
            if not found and not first:
                outcome = store.get_workflow_outcome(workflow_id)
                found = outcome is None or outcome.status != Status.PENDING
            if found:
                self.set()
                return
            if not keep_polling:
                return
            later = min(interval * 2, POLL_MAX_S)
            timers.at(
                clock.now_ms() + int(interval * 1000),
                lambda: self._submit(lambda: poll(later, False)),
            )

        self._submit(lambda: poll(wakeups.poll_interval, True))
