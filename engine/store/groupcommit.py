"""Group commit: many threads' writes committed together in one transaction.

Each write is its own durable commit from the caller's point of view (``submit`` returns only
after the transaction holding it committed), but concurrent writers share one commit (one
fsync). There is no background thread: a caller that finds no commit in progress becomes the
leader and executes the whole queue; callers arriving meanwhile wait, and the leader, when done,
hands the lead to the oldest waiter. A lone writer (the serial case) thus commits directly on
its own thread with no hand-off at all.

A write is one or more statements that must commit together (e.g. record a step and delete
the message it consumed); its statements run in order, inside the batch's transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.threads import Latch

# (query name, parameters)
Statement = tuple[str, Mapping[str, Any]]
Rows = list[Any]
# Executes writes in one transaction and returns, per write, each statement's rows; or raises.
BatchExecutor = Callable[[Sequence[Sequence[Statement]]], list[list[Rows]]]

MAX_BATCH = 512


class _Write:
    __slots__ = ("done", "error", "results", "statements", "woken")

    def __init__(self, statements: Sequence[Statement]) -> None:
        self.statements = statements
        self.woken = Latch()
        self.results: list[Rows] = []
        self.error: BaseException | None = None
        self.done = False

    def outcome(self) -> list[Rows]:
        if self.error is not None:
            raise self.error
        return self.results


class GroupCommitter:
    def __init__(
        self,
        execute: BatchExecutor,
        splittable: Callable[[BaseException], bool] = lambda exc: True,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._execute = execute
        self._on_batch = on_batch  # told each batch's size (metrics)
        # Whether a failed batch is worth retrying write by write (a bad statement), or the
        # failure is everyone's (the database is unreachable): then all get the error.
        self._splittable = splittable
        self._mutex = threading.Lock()
        self._queue: list[_Write] = []
        self._leading = False

    def submit(self, statements: Sequence[Statement]) -> list[Rows]:
        """Commit the statements (together, in order); returns each one's rows."""
        write = _Write(statements)
        with self._mutex:
            lead = not self._leading
            if lead:
                self._leading = True  # a leader's own write never enters the queue
            else:
                self._queue.append(write)
        if not lead:
            write.woken.wait()
            if write.done:
                return write.outcome()
            # Woken but not done: the leader took us off the queue and handed us the lead.
        self._lead(write)
        return write.outcome()

    def _lead(self, first: _Write) -> None:
        with self._mutex:
            batch = [first, *self._queue[: MAX_BATCH - 1]]
            del self._queue[: MAX_BATCH - 1]
        self._on_batch(len(batch))
        try:
            self._run(batch)
        finally:
            for write in batch:
                write.done = True
                write.woken.open()
            with self._mutex:
                if self._queue:
                    self._queue.pop(0).woken.open()  # the oldest waiter leads the next batch
                else:
                    self._leading = False

    def _run(self, batch: list[_Write]) -> None:
        try:
            results = self._execute([w.statements for w in batch])
        except BaseException as exc:
            if len(batch) == 1 or not self._splittable(exc):
                for write in batch:
                    write.error = exc
                return
            # One bad write must not fail its neighbours: retry each in its own transaction
            # so the error lands on the write that caused it.
            for write in batch:
                try:
                    write.results = self._execute([write.statements])[0]
                except BaseException as single_exc:
                    write.error = single_exc
            return
        for write, result in zip(batch, results, strict=True):
            write.results = result
