"""Partitioned queues: fair service across the partitions of a queue.

A queue declared with ``partition_concurrency`` runs at most that many workflows of one
partition (``start_workflow(..., partition_key=...)``) at once, and hands its free slots to
the partitions with waiting work in turn: one slot each per round, the partition served least
recently first (the order the store reports, the same on every worker). So a partition with
10,000 waiting workflows takes one slot per round like a partition with one: it never starves
the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Partition:
    key: str
    running: int
    waiting: int


def allot(partitions: Sequence[Partition], budget: int, per_partition: int) -> dict[str, int]:
    """How many workflows to start from each partition: round-robin over ``partitions`` (in
    their turn order), one slot per partition per round, within ``per_partition`` running."""
    room = {p.key: min(p.waiting, max(per_partition - p.running, 0)) for p in partitions}
    given = dict.fromkeys(room, 0)
    while budget > 0:
        progressed = False
        for p in partitions:
            if budget <= 0:
                break
            if given[p.key] < room[p.key]:
                given[p.key] += 1
                budget -= 1
                progressed = True
        if not progressed:
            break
    return {key: n for key, n in given.items() if n}


def check_key(partition_key: object, queue: str | None, partitioned: bool | None) -> None:
    """``partitioned``: whether the queue is declared with partitions (None: unknown here, a
    client's start by name)."""
    if partition_key is None:
        if partitioned:
            raise ValueError(
                f"queue {queue!r} is partitioned: pass partition_key= (e.g. the tenant's ID)"
            )
        return
    if not isinstance(partition_key, str) or not partition_key or len(partition_key) > 200:
        raise ValueError(
            f"partition_key must be a non-empty string of at most 200 characters, got "
            f"{partition_key!r}"
        )
    if queue is None:
        raise ValueError("partition_key needs a queue= declared with partition_concurrency")
    if partitioned is False:
        raise ValueError(
            f"queue {queue!r} has no partitions; declare it with "
            "engine.queue(..., partition_concurrency=N) to use partition_key="
        )
