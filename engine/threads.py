"""A bounded pool of daemon threads that run workflow bodies.

Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at interpreter exit, so
one workflow stuck in user code would hang the process's exit. A workflow interrupted by
shutdown stays PENDING in the database and is recovered, so abandoning its thread is safe.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger("waymark.threads")


class ThreadPool:
    def __init__(self, max_threads: int, name: str) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be >= 1, got {max_threads}")
        self.max_threads = max_threads
        self._name = name
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._blocked = 0

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            # Grow lazily: a new thread only when none is idle and the bound allows it;
            # past the bound, tasks wait in the queue for the next free thread. Threads blocked
            # in a wait (a parent awaiting its child, a recv) do not count: otherwise parents
            # could fill the pool and starve the children they wait for.
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) - self._blocked < self.max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._tasks.put(task)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            try:
                task()
            except BaseException:  # a task must never kill its worker thread
                log.exception("workflow task crashed", extra={"action": "threads.task_crashed"})
            with self._lock:
                self._idle += 1

    @contextlib.contextmanager
    def blocking(self) -> Iterator[None]:
        """Mark the current pool thread as blocked in a wait for the duration."""
        with self._lock:
            self._blocked += 1
            pending = not self._tasks.empty()
        if pending:  # work queued behind us may now get a thread of its own
            self.submit(lambda: None)
        try:
            yield
        finally:
            with self._lock:
                self._blocked -= 1

    def stop(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(None)

    @property
    def size(self) -> int:
        return len(self._threads)


class Latch:
    """A one-shot gate, cheaper than ``threading.Event`` (one C lock, no Condition).

    Closed when made; ``open()`` lets every present and future ``wait()`` through: each waiter
    that gets the lock releases it again for the next one.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def open(self) -> None:
        if self._lock.locked():
            try:
                self._lock.release()
            except RuntimeError:  # opened twice concurrently: already open
                pass

    def wait(self, timeout: float | None = None) -> bool:
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            return False
        try:
            self._lock.release()
        except RuntimeError:  # a concurrent open() released it for us
            pass
        return True
