"""Group commit: many threads' writes committed together in one transaction.

Each write is its own durable commit from the caller's point of view (``submit`` returns only
after the transaction holding it committed), but concurrent writers share one commit (one
fsync). There is no background thread: the first caller that finds no commit in progress
becomes the leader and executes the whole queue; callers arriving meanwhile wait, and when the
leader is done it hands the lead to the oldest waiter. A lone writer (the serial case) thus
commits directly on its own thread with no hand-off at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Statement = tuple[str, Mapping[str, Any]]
Rows = list[Any]
# Executes statements in one transaction and returns each one's rows, or raises.
BatchExecutor = Callable[[Sequence[Statement]], list[Rows]]

MAX_BATCH = 512


class _Write:
    __slots__ = ("done", "error", "rows", "statement", "woken")

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self.woken = threading.Event()
        self.rows: Rows = []
        self.error: BaseException | None = None
        self.done = False

    def outcome(self) -> Rows:
        if self.error is not None:
            raise self.error
        return self.rows


class GroupCommitter:
    def __init__(self, execute: BatchExecutor) -> None:
        self._execute = execute
        self._mutex = threading.Lock()
        self._queue: list[_Write] = []
        self._leading = False

    def submit(self, sql: str, params: Mapping[str, Any]) -> Rows:
        write = _Write((sql, params))
        with self._mutex:
            self._queue.append(write)
            lead = not self._leading
            self._leading = True
        if not lead:
            write.woken.wait()
            if write.done:
                return write.outcome()
            # Not done but woken: the previous leader handed us the lead.
        self._lead()
        return write.outcome()

    def _lead(self) -> None:
        with self._mutex:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            self._run(batch)
        finally:
            for write in batch:
                write.done = True
                write.woken.set()
            with self._mutex:
                if self._queue:
                    self._queue[0].woken.set()  # the oldest waiter leads the next batch
                else:
                    self._leading = False

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
