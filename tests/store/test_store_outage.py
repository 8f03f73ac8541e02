"""A database that stays down fails a batch of writes once, after ``retry_for_s``: not once for
the batch and then again for each of its writes, one after another.

Found by the store's mutation run: the batch's retries end in ``SystemDatabaseUnavailableError``,
which ``is_transient`` does not recognise, so the group committer took it for a bad statement
and retried every write of the batch alone, each for another ``retry_for_s`` (a batch of 100
writes: 101 times the 60 s before the last writer heard).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from engine import errors
from engine.store import base, groupcommit, sqlite


class FakeTime:
    """Sleeping advances the clock at once."""

    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_a_batch_that_outlives_the_retries_fails_every_write_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite.SQLiteStore(str(tmp_path / "down.sqlite3"))
    store.ready()
    fake = FakeTime()
    monkeypatch.setattr(base, "time", fake)
    store.retry_for_s = 1.0
    attempts: list[int] = []

    def down(writes: Sequence[Sequence[groupcommit.Statement]]) -> list[list[Any]]:
        attempts.append(len(writes))
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "_execute_batch", down)
    committer = store._committer
    # Two writes already queued behind this caller's: one batch of three.
    queued = [groupcommit._Write([("record_step", {})]) for _ in range(2)]
    committer._queue.extend(queued)
    with pytest.raises(errors.SystemDatabaseUnavailableError) as info:
        committer.submit([("record_step", {})])
    assert str(info.value).endswith("stayed unreachable for 1 s: database is locked")
    for write in queued:
        assert write.woken.wait(0)
        assert isinstance(write.error, errors.SystemDatabaseUnavailableError)
    assert set(attempts) == {3}  # only the batch was retried, never a write alone
    assert fake.t < 2.0  # within one retry_for_s (plus the last back-off)
    store.close()
