"""Durable queue control, seen by every worker: pause, resume, and limits changed at run time.

The settings live in ``queue_settings`` (migration 0007): a pause flag and the limits changed,
each overriding the queue's declared value. Every worker reads them once per refresh interval
(one small query for all queues) and claims by the effective values: a paused queue starts
nothing (what runs continues), a changed limit applies from the next claim. Control calls are
the same on an engine and a ``Client``; an unknown queue raises, nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from engine import errors, heartbeat, rows
from engine import signals as keys
from engine.queues import INTERNAL_QUEUE, Queue
from engine.records import QueueInfo
from engine.store import Store
from engine.wakeups import Wakeups

UNSET: Any = object()  # set_queue_limits: "leave this limit as it is"
REFRESH_S = 1.0  # how stale a worker's view of the settings may be


@dataclasses.dataclass(frozen=True)
class Settings:
    paused: bool
    limits: dict[str, Any]  # only the limits changed; see 0007_parity.sql for the encoding


def _decode(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _limit(value: Any, name: str, queue: str) -> int:
    """A concurrency as stored: 0 for no limit."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"queue {queue!r}: {name}={value!r} is not a limit; pass an int >= 1, or None for "
            "no limit"
        )
    return value


def _rate(value: Any, queue: str) -> list[Any]:
    if value is None:
        return []
    try:
        starts, period = value
    except (TypeError, ValueError):
        starts, period = None, None
    if (
        isinstance(starts, bool)
        or not isinstance(starts, int)
        or starts < 1
        or isinstance(period, bool)
        or not isinstance(period, int | float)
        or period <= 0
    ):
        raise ValueError(
            f"queue {queue!r}: rate_limit={value!r} is not a rate limit; pass (max_starts >= 1, "
            "period_seconds > 0), or None for no limit"
        )
    return [starts, float(period)]


def apply(queue: Queue, settings: Settings | None) -> Queue | None:
    """The queue as a worker claims from it now; None while it is paused."""
    if settings is None:
        return queue
    if settings.paused:
        return None
    changes: dict[str, Any] = {}
    for name in ("concurrency", "worker_concurrency"):
        if name in settings.limits:
            changes[name] = settings.limits[name] or None
    if "rate_limit" in settings.limits:
        rate = settings.limits["rate_limit"]
        changes["rate_limit"] = (int(rate[0]), float(rate[1])) if rate else None
    if not changes:
        return queue
    return dataclasses.replace(queue, **changes)


class QueueControl:
    def __init__(
        self,
        store: Store,
        wakeups: Wakeups,
        declared: Callable[[], Mapping[str, Queue]] | None = None,
    ) -> None:
        """``declared``: the queues this process declared (an engine's); a client has none."""
        self._store = store
        self._wakeups = wakeups
        self._declared = declared or dict
        self._lock = threading.Lock()
        self._settings: dict[str, Settings] = {}
        self._read_at = float("-inf")

    # -- what workers use ----------------------------------------------------------------------

    def effective(self, queue: Queue) -> Queue | None:
        """``queue`` with the database's settings applied (re-read at most every REFRESH_S);
        None while paused. The internal queue is never controlled."""
        if queue.name == INTERNAL_QUEUE:
            return queue
        return apply(queue, self.settings().get(queue.name))

    def settings(self, fresh: bool = False) -> dict[str, Settings]:
        with self._lock:
            if fresh or time.monotonic() - self._read_at >= REFRESH_S:
                self._settings = {
                    row["queue_name"]: Settings(bool(row["paused"]), _decode(row["limits"]))
                    for row in self._store.ready().queues.queue_settings()
                }
                self._read_at = time.monotonic()
            return self._settings

    # -- control -------------------------------------------------------------------------------

    def _known(self, name: Any) -> str:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a queue name must be a non-empty string, got {name!r}")
        if name == INTERNAL_QUEUE:
            raise errors.EngineError(f"queue {name!r} is the engine's own; it cannot be controlled")
        if name in self._declared() or self._store.ready().queues.queue_seen(name):
            return name
        declared = self._declared_anywhere()
        if name in declared:
            return name
        known = sorted(declared)
        raise errors.EngineError(
            f"unknown queue {name!r}; declare it with engine.queue() (known queues: "
            f"{', '.join(known) or 'none'})"
        )

    def pause(self, name: str) -> None:
        self._store.ready().queues.set_queue_paused(self._known(name), True)
        self.settings(fresh=True)

    def resume(self, name: str) -> None:
        self._store.ready().queues.set_queue_paused(self._known(name), False)
        self.settings(fresh=True)
        self._wakeups.fire(keys.ENQUEUED)  # its waiting work may start now

    def set_limits(
        self,
        name: str,
        *,
        concurrency: Any = UNSET,
        worker_concurrency: Any = UNSET,
        rate_limit: Any = UNSET,
    ) -> None:
        """Change only the limits given (None: no limit), checked before anything is written."""
        changes: dict[str, Any] = {}
        if concurrency is not UNSET:
            changes["concurrency"] = _limit(concurrency, "concurrency", str(name))
        if worker_concurrency is not UNSET:
            changes["worker_concurrency"] = _limit(
                worker_concurrency, "worker_concurrency", str(name)
            )
        if rate_limit is not UNSET:
            changes["rate_limit"] = _rate(rate_limit, str(name))
        known = self._known(name)
        if not changes:
            raise ValueError(
                "set_queue_limits needs at least one of concurrency=, worker_concurrency=, "
                "rate_limit="
            )
        self._store.ready().queues.set_queue_limits(known, json.dumps(changes))
        self.settings(fresh=True)
        self._wakeups.fire(keys.ENQUEUED)  # a raised limit may let waiting work start

    # -- inspection ----------------------------------------------------------------------------

    def _declared_anywhere(self) -> dict[str, Queue]:
        """The queues declared here and by every worker with a heartbeat (with their limits)."""
        declared: dict[str, Queue] = {}
        for executor in self._store.ready().executors.list_executors():
            for served in heartbeat.decode_queues(executor.queues):
                if served.name != INTERNAL_QUEUE and served.name not in declared:
                    declared[served.name] = Queue(
                        served.name,
                        served.concurrency,
                        served.worker_concurrency,
                        served.rate_limit,
                        served.partition_concurrency,
                    )
        declared.update(self._declared())
        return declared

    def list_queues(self) -> list[QueueInfo]:
        """Every declared queue (here, or by a worker's heartbeat) and every queue seen in the
        database, with its effective settings and its unfinished work."""
        store = self._store.ready()
        declared = self._declared_anywhere()
        settings = self.settings(fresh=True)
        counts = {row["queue_name"]: row for row in store.queues.queue_counts()}
        names = sorted(({*declared, *settings, *counts}) - {INTERNAL_QUEUE})
        found = []
        for name in names:
            own = settings.get(name)
            limits = Settings(False, own.limits if own else {})
            queue = apply(declared.get(name) or Queue(name), limits)
            assert queue is not None
            count = counts.get(name)
            found.append(
                QueueInfo(
                    name=name,
                    paused=bool(own and own.paused),
                    concurrency=queue.concurrency,
                    worker_concurrency=queue.worker_concurrency,
                    rate_limit=queue.rate_limit,
                    partition_concurrency=queue.partition_concurrency,
                    enqueued=int(count["enqueued"] or 0) if count else 0,
                    running=int(count["running"] or 0) if count else 0,
                    delayed=int(count["delayed"] or 0) if count else 0,
                    oldest_enqueued_at=rows.from_ms(count["oldest_enqueued_at"]) if count else None,
                )
            )
        return found
