"""The background duties of a launched engine, in one loop of small steps.

Each pass (``run_once``): heartbeat when due, re-enqueue the work of executors whose heartbeat
expired and resume this executor's orphans (``engine.orphans``), start delayed workflows whose
time came, and claim queued workflows within every queue's limits. Between passes it sleeps
until something is enqueued here (or, on Postgres, anywhere), a thread frees up while claims
were held back for lack of one, or the poll interval passes (other processes' enqueues on
SQLite are seen by polling).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from engine import fleet, heartbeat
from engine import signals as keys
from engine.orphans import Orphans
from engine.queues import INTERNAL_QUEUE, Queue
from engine.store import Store, records
from engine.wakeups import Wakeups

log = logging.getLogger("waymark.worker")

# The least time between two claiming passes. While workflows are enqueued here one after
# another (W4: one thread, 2,000 starts), each enqueue woke the loop, which claimed that one
# workflow: a claiming write per workflow, and every start waited for the claim in the commit
# ahead of its own. Passes at most every 5 ms claim what came meanwhile in one write, and cap
# a worker's refills at its free threads per 5 ms (16 threads: 3,200 workflows/s).
CLAIM_GAP_S = 0.005

# What the loop does with a claimed row (PENDING under this executor): run it here, or hand it
# to another process (a Dispatcher).
Dispatch = Callable[[records.WorkflowRow], object]


class Capacity(Protocol):
    """How much more this process can run (the runtime)."""

    def free_capacity(self) -> int: ...

    def running_on(self, queue_name: str) -> int: ...


class Worker:
    def __init__(
        self,
        store: Store,
        wakeups: Wakeups,
        stopping: threading.Event,
        *,
        executor_id: str,
        application_version: str,
        capacity: Capacity,
        dispatch: Dispatch,
        queues: Sequence[Queue],
        schedules: Mapping[str, str],
        heartbeat_timeout: float,
        claim_queues: bool = True,
        settings: Callable[[Queue], Queue | None] | None = None,
        dispatching: bool = False,
        orphans: Orphans | None = None,
    ) -> None:
        """``claim_queues=False``: heartbeat and recover dead executors, but claim nothing (a
        Celery worker process runs only what its tasks hand it). ``settings``: a queue as the
        database's queue control says to claim from it now (None: paused)."""
        self._settings = settings
        self._orphans = orphans
        self._store = store
        self._wakeups = wakeups
        self._stopping = stopping
        self._executor_id = executor_id
        self._version = application_version
        self._capacity = capacity
        self._dispatch = dispatch
        # The internal queue (resumed and forked workflows) is served by every worker.
        self._queues = [Queue.internal(), *queues]
        self._enqueue_keys = (keys.ENQUEUED, *(keys.enqueued_key(q.name) for q in self._queues))
        # Per queue: the wake-up count (Wakeups.enqueued_on) at its last claim with room, and
        # when it is next claimed anyway (others' enqueues are seen by polling).
        self._claimed_upto: dict[str, int] = {}
        self._next_poll: dict[str, float] = {}
        self._schedules = dict(schedules)
        self.heartbeat_timeout = heartbeat_timeout
        self._claim_queues = claim_queues
        # For the console's fleet view (engine.fleet): what this executor is.
        self.role = fleet.role(dispatching=dispatching, claim_queues=claim_queues)
        self._next_heartbeat = 0.0
        self._last_pass = 0.0
        self._next_sweep = 0.0
        self._next_promotion = 0.0
        # Per queue: did its last claim with room fill that room (so more may wait)? Then a
        # freed thread is worth a pass. Unknown while there is no room: the last answer holds.
        self._more: dict[str, bool] = {}
        self._thread: threading.Thread | None = None
        self.poll_interval = 0.5 if store.poll_interval < 0.5 else 1.0

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="waymark-worker", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        if not self._claim_queues:  # heartbeat and sweep only: no wake-up is worth a pass
            while not self._stopping.wait(self.poll_interval):
                try:
                    self.run_once()
                except Exception:
                    log.exception("worker pass failed", extra={"action": "worker.failed"})
            return
        while not self._stopping.is_set():
            # A freed thread is worth waking up for only while work is held back for lack of
            # one (as the last pass found); watching FREED always woke this thread at the end
            # of every run here, a thread hand-off per workflow for nothing. (A queue with a
            # shared limit counts as holding work back from its first pass on.)
            held_back = any(self._more.values())
            watched = (*self._enqueue_keys, keys.FREED) if held_back else self._enqueue_keys
            with self._wakeups.watch(*watched) as woken:
                enqueues = self._wakeups.enqueues
                gap = self._last_pass + CLAIM_GAP_S - time.monotonic()
                if gap > 0 and self._stopping.wait(gap):
                    return
                self._last_pass = time.monotonic()
                try:
                    claimed = self.run_once()
                except Exception:
                    if self._stopping.is_set():
                        return
                    log.exception("worker pass failed", extra={"action": "worker.failed"})
                    claimed = 0
                # Work found held back for lack of room, by a pass that did not watch FREED:
                # pass again at once, watching it (else the work would wait for the poll).
                newly_held_back = not held_back and any(self._more.values())
                if not claimed and not newly_held_back:
                    self._idle(woken, enqueues)

    def _idle(self, woken: threading.Event, enqueues: int) -> None:
        """Wait for the next pass: an enqueue, or a freed thread while work was held back for
        lack of one, or the poll interval. A run ending here is not worth a pass (a claiming
        write) otherwise: with nothing queued it would claim nothing, after every workflow."""
        deadline = time.monotonic() + self.poll_interval
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not woken.wait(remaining):
                return
            woken.clear()
            if self._wakeups.enqueues != enqueues or any(self._more.values()):
                return

    def run_once(self) -> int:
        """One pass of every duty; returns how many workflows were claimed."""
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self.beat()
        if now >= self._next_sweep:
            self._next_sweep = now + self.heartbeat_timeout / 3
            self.sweep()
        if not self._claim_queues:
            return 0
        if now >= self._next_promotion:  # delays are coarse: no write on every pass
            self._next_promotion = now + self.poll_interval
            for queue_name in self._store.queues.promote_delayed():
                self._wakeups.fire(keys.enqueued_key(queue_name))
        return sum(self._claim(queue) for queue in self._queues)

    def beat(self) -> None:
        # What it serves, with limits and schedules, so the console can show them.
        self._store.executors.heartbeat(
            self._executor_id,
            self._version,
            socket.gethostname(),
            os.getpid(),
            heartbeat.encode_queues(self._queues),
            heartbeat.encode_schedules(self._schedules),
        )
        self._store.executors.describe_executor(self._executor_id, self.role, fleet.node_name())
        self._next_heartbeat = time.monotonic() + self.heartbeat_timeout / 6

    def sweep(self) -> None:
        """Hand the unfinished work of executors whose heartbeat expired to the live ones, and
        resume this executor's orphaned workflows."""
        requeued = self._store.executors.requeue_dead_executors(
            self._executor_id, int(self.heartbeat_timeout * 1000), INTERNAL_QUEUE
        )
        for dead, workflow_ids in requeued.items():
            log.warning(
                "executor %s is gone: %d workflows re-enqueued",
                dead,
                len(workflow_ids),
                extra={
                    "action": "executor.dead",
                    "executor_id": dead,
                    "workflows": len(workflow_ids),
                },
            )
            if workflow_ids:
                self._store.metrics.recovered(len(workflow_ids))
                self._wakeups.fire(keys.ENQUEUED)
        if self._orphans is not None:
            self._orphans.sweep()

    def _claim(self, queue: Queue) -> int:
        if self._settings is not None:
            controlled = self._settings(queue)
            if controlled is None:  # paused: start nothing; what runs continues
                return 0
            queue = controlled
        capacity = self._capacity
        budget = capacity.free_capacity()
        if queue.worker_concurrency is not None:
            budget = min(budget, queue.worker_concurrency - capacity.running_on(queue.name))
        # A claim is a write: made only when work may be waiting on this queue (enqueued here
        # since its last claim, held back by the last one, or the poll is due).
        enqueued = self._wakeups.enqueued_on(queue.name)
        now = time.monotonic()
        if (
            enqueued == self._claimed_upto.get(queue.name)
            and not self._more.get(queue.name)
            and now < self._next_poll.get(queue.name, 0.0)
        ):
            return 0
        if budget <= 0:
            if enqueued != self._claimed_upto.get(queue.name):
                self._more[queue.name] = True  # work waits for room: a freed thread is worth a pass
            return 0
        if queue.partition_concurrency is not None:
            rows = self._store.queues.dequeue_partitioned(
                queue.name,
                self._version,
                self._executor_id,
                budget,
                queue.partition_concurrency,
                concurrency=queue.concurrency,
                rate_limit=queue.rate_limit,
            )
        else:
            rows = self._store.queues.dequeue(
                queue.name,
                self._version,
                self._executor_id,
                budget,
                concurrency=queue.concurrency,
                rate_limit=queue.rate_limit,
            )
        # Counted only once the claim went through (a failed one is made again next pass).
        self._claimed_upto[queue.name] = enqueued
        self._next_poll[queue.name] = now + self.poll_interval
        # A shared budget (global concurrency, rate limit) may hold work back too, and a run
        # ending here may be what frees it.
        shared = (
            queue.concurrency is not None
            or queue.rate_limit is not None
            or queue.partition_concurrency is not None
        )
        self._more[queue.name] = shared or len(rows) >= budget
        for row in rows:
            self._dispatch(row)
        return len(rows)
