"""Group commit: many threads' writes committed together in one transaction.

Each write is its own durable commit from the caller's point of view (``submit`` returns only
after the transaction holding it committed), but concurrent writers share one commit (one
fsync). There is no background thread: a caller that finds a free leader slot becomes a leader
and executes the whole queue; callers arriving while every slot is busy wait, and a leader that
is done hands its slot to the oldest waiter. A lone writer (the serial case) thus commits
directly on its own thread with no hand-off at all.

With ``max_leaders > 1`` (one connection each) a new batch can execute while an earlier one is
still waiting for its fsync; Postgres flushes concurrent commits together anyway. Two writes of
one workflow are never in flight at once (a workflow waits for each write), so batches need no
ordering between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.threads import Latch

# (query name, parameters)
Statement = tuple[str, Mapping[str, Any]]
Rows = list[Any]
# Executes statements in one transaction and returns each one's rows, or raises.
BatchExecutor = Callable[[Sequence[Statement]], list[Rows]]

MAX_BATCH = 512


class _Write:
    __slots__ = ("done", "error", "rows", "statement", "woken")

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self.woken = Latch()
        self.rows: Rows = []
        self.error: BaseException | None = None
        self.done = False

    def outcome(self) -> Rows:
        if self.error is not None:
            raise self.error
        return self.rows


class GroupCommitter:
    def __init__(self, execute: BatchExecutor, max_leaders: int = 1) -> None:
        self._execute = execute
        self._mutex = threading.Lock()
        self._queue: list[_Write] = []
        self._max_leaders = max_leaders
        self._leaders = 0

    def submit(self, query: str, params: Mapping[str, Any]) -> Rows:
        write = _Write((query, params))
        with self._mutex:
            lead = self._leaders < self._max_leaders
            if lead:
                self._leaders += 1  # a leader's own write never enters the queue
            else:
                self._queue.append(write)
        if not lead:
            write.woken.wait()
            if write.done:
                return write.outcome()
            # Woken but not done: a leader took us off the queue and handed us its slot.
        self._lead(write)
        return write.outcome()

    def _lead(self, first: _Write) -> None:
        with self._mutex:
            batch = [first, *self._queue[: MAX_BATCH - 1]]
            del self._queue[: MAX_BATCH - 1]
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
                    self._leaders -= 1

    def _run(self, batch: list[_Write]) -> None:
        try:
            results = self._execute([w.statement for w in batch])
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            # One bad statement must not fail its neighbours: retry each in its own transaction
            # so the error lands on the write that caused it.
            for write in batch:
                try:
                    write.rows = self._execute([write.statement])[0]
                except BaseException as single_exc:
                    write.error = single_exc
            return
        for write, rows in zip(batch, results, strict=True):
            write.rows = rows
