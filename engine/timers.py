"""One thread that runs callbacks at given times: parked sleepers' wake-ups and deadlines.

A heap, not a thread per timer: ten thousand sleeping workflows cost ten thousand heap entries.
Callbacks must be short (they hand real work to the workflow pool).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("waymark.timers")


class Timers:
    def __init__(self, name: str) -> None:
        self._name = name
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()  # ties by insertion; callables are not comparable
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def at(self, epoch_ms: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the wall clock reaches ``epoch_ms``."""
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (epoch_ms / 1000, next(self._order), callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def __len__(self) -> int:
        return len(self._heap)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    delay = self._heap[0][0] - time.time() if self._heap else None
                    if delay is not None and delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                log.exception("timer callback failed", extra={"action": "timers.failed"})

    def stop(self, timeout: float = 5.0) -> None:
        """Drop what is scheduled and wait for a running callback to return."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
