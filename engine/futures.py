"""StepFuture: the pending result of a ``ctx.go`` step, and the set a workflow tracks."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any


class StepFuture:
    def __init__(self, step_id: int, owner: FutureSet) -> None:
        self.step_id = step_id
        self._owner = owner
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self.completed_order = -1  # completion sequence number, for select()

    def __repr__(self) -> str:
        return f"StepFuture(step {self.step_id}, done={self.done()})"

    def done(self) -> bool:
        return self._done.is_set()

    def resolve(self, value: Any, error: BaseException | None) -> None:
        self._value, self._error = value, error
        self._owner.completed(self)

    def mark_done(self, order: int) -> None:
        """Called by its set, in completion order."""
        self.completed_order = order
        self._done.set()

    def result(self, timeout: float | None = None) -> Any:
        """The step's value (or its exception raised), waiting up to ``timeout`` seconds."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"step {self.step_id} did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


class FutureSet:
    """The futures of one workflow execution, with the order in which they completed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._all: list[StepFuture] = []
        self._completions = 0

    def new(self, step_id: int) -> StepFuture:
        future = StepFuture(step_id, self)
        with self._cond:
            self._all.append(future)
        return future

    def completed(self, future: StepFuture) -> None:
        with self._cond:
            future.mark_done(self._completions)
            self._completions += 1
            self._cond.notify_all()

    def pending(self) -> bool:
        with self._cond:
            return any(not f.done() for f in self._all)

    def first_done(self, futures: Sequence[StepFuture]) -> int | None:
        """Index (in ``futures``) of the earliest completed one, or None if none is done."""
        with self._cond:
            done = [(f.completed_order, i) for i, f in enumerate(futures) if f.done()]
        return min(done)[1] if done else None
