"""The engine's asyncio side: its own event-loop thread (recovered, queued and scheduled async
workflows run there) and the few I/O threads that carry async workflows' reads.

The store is synchronous (sqlite3, libpq). An async workflow must not block its loop: its
writes (start, checkpoints, finish) join the group commit with ``submit_async`` and are
resolved on the loop by the committing thread; the other store calls (reads, the rare paths)
run on one of a small, fixed set of I/O threads and the loop awaits them, the thread resolving
the future with ``loop.call_soon_threadsafe``. So a waiting async workflow holds no thread and a
thousand of them need no more than these.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from engine.threads import ThreadPool

T = TypeVar("T")

IO_THREADS = 4


class EventLoopThread:
    """An event loop on a daemon thread of its own, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop())

    def stop(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)


class Offload:
    """Runs blocking calls for coroutines on a few daemon I/O threads."""

    def __init__(self, name: str, threads: int = IO_THREADS) -> None:
        self._pool = ThreadPool(threads, name)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(value: Any, error: BaseException | None) -> None:
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

        def task() -> None:
            try:
                value = fn(*args)
            except BaseException as exc:  # handed to the awaiting coroutine, never lost here
                loop.call_soon_threadsafe(settle, None, exc)
                return
            loop.call_soon_threadsafe(settle, value, None)

        self._pool.submit(task)
        return await future

    @property
    def threads(self) -> int:
        return self._pool.size

    def stop(self) -> None:
        self._pool.stop()


class LoopEvent:
    """An asyncio event that any thread may set (a signal fired anywhere): registered with
    ``Signals.watch_with``, it wakes a coroutine waiting on ``event``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.event = asyncio.Event()

    def set(self) -> None:
        if running_loop() is self._loop:  # fired on the loop itself: no self-pipe write
            self.event.set()
            return
        try:
            self._loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the loop closed meanwhile: nobody waits any more
            pass


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
