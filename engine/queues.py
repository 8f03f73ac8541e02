"""Queues: durable, database-backed work queues with concurrency, rate limits and priority."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

INTERNAL_QUEUE = "_waymark"


@dataclass(frozen=True)
class Queue:
    """A queue declared with ``engine.queue()``.

    ``concurrency``: at most this many of its workflows run at once across all workers;
    ``worker_concurrency``: at most this many per worker process; ``rate_limit``:
    ``(max_starts, period_seconds)``, counted across all workers.
    """

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    # At most this many of one partition run at once; partitions are served in turn.
    partition_concurrency: int | None = None

    @classmethod
    def internal(cls) -> Queue:
        queue = cls.__new__(cls)
        object.__setattr__(queue, "name", INTERNAL_QUEUE)
        for field in ("concurrency", "worker_concurrency", "rate_limit", "partition_concurrency"):
            object.__setattr__(queue, field, None)
        return queue

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name == INTERNAL_QUEUE:
            raise ValueError(
                f"queue name must be a non-empty string other than "
                f"{INTERNAL_QUEUE!r}, got {self.name!r}"
            )
        for field in ("concurrency", "worker_concurrency", "partition_concurrency"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"queue {self.name!r}: {field} must be an int >= 1, got {value!r}")
        if self.rate_limit is not None:
            starts, period = self.rate_limit
            if not isinstance(starts, int) or starts < 1 or not period or period <= 0:
                raise ValueError(
                    f"queue {self.name!r}: rate_limit must be (max_starts >= 1, period_seconds "
                    f"> 0), got {self.rate_limit!r}"
                )


def queue_name(queue: Queue | str) -> str:
    return queue.name if isinstance(queue, Queue) else queue


def delay_ms(delay: float | dt.timedelta | None) -> int | None:
    if delay is None:
        return None
    seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else delay
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ValueError(f"delay must be seconds >= 0 or a timedelta, got {delay!r}")
    return int(seconds * 1000)
