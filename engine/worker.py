"""The background duties of a launched engine, in one loop of small steps.

Each pass (``run_once``): heartbeat when due, re-enqueue the work of executors whose heartbeat
expired, start delayed workflows whose time came, and claim queued workflows within every
queue's limits. Between passes it sleeps until something is enqueued here, a run ends, or
the poll interval passes (other processes' enqueues are seen by polling).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.queues import INTERNAL_QUEUE, Queue

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger("waymark.worker")

# Handles a claimed row: run it here (default) or hand it elsewhere (Celery).
Dispatch = Callable[[Any], None]


class Worker:
    def __init__(
        self, engine: Engine, queues: list[Queue], heartbeat_timeout: float, dispatch: Dispatch
    ) -> None:
        self._engine = engine
        self._store = engine._store
        # The internal queue (resumed and forked workflows) is served by every worker.
        self._queues = [Queue.internal(), *queues]
        self.heartbeat_timeout = heartbeat_timeout
        self._dispatch = dispatch
        self._next_heartbeat = 0.0
        self._next_sweep = 0.0
        self._next_promotion = 0.0
        self._thread: threading.Thread | None = None
        self.poll_interval = 0.5 if self._store.dialect == "sqlite" else 1.0

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="waymark-worker", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        engine = self._engine
        while not engine._stopping.is_set():
            with engine._signals.watch("enq") as woken:
                try:
                    claimed = self.run_once()
                except Exception:
                    if engine._stopping.is_set():
                        return
                    log.exception("worker pass failed", extra={"action": "worker.failed"})
                    claimed = 0
                if not claimed:
                    woken.wait(self.poll_interval)

    def run_once(self) -> int:
        """One pass of every duty; returns how many workflows were claimed."""
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self.beat()
        if now >= self._next_sweep:
            self._next_sweep = now + self.heartbeat_timeout / 3
            self.sweep()
        if not self._engine.serve_queues:
            return 0
        if now >= self._next_promotion:  # delays are coarse: no write on every pass
            self._next_promotion = now + self.poll_interval
            self._store.promote_delayed()
        return sum(self._claim(queue) for queue in self._queues)

    def beat(self) -> None:
        engine = self._engine
        # What it serves, with limits and schedules, so the console can show them.
        served = [dataclasses.asdict(q) for q in self._queues]
        schedules = {d.name: d.schedule for d in engine._registry.workflows.values() if d.schedule}
        self._store.heartbeat(
            engine.executor_id,
            engine.application_version,
            socket.gethostname(),
            os.getpid(),
            json.dumps(served),
            json.dumps(schedules),
        )
        self._next_heartbeat = time.monotonic() + self.heartbeat_timeout / 6

    def sweep(self) -> None:
        """Hand the unfinished work of executors whose heartbeat expired to the live ones."""
        requeued = self._store.requeue_dead_executors(
            self._engine.executor_id, int(self.heartbeat_timeout * 1000), INTERNAL_QUEUE
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
                self._engine._signals.fire("enq")

    def _claim(self, queue: Queue) -> int:
        engine = self._engine
        budget = engine._free_capacity()
        if queue.worker_concurrency is not None:
            budget = min(budget, queue.worker_concurrency - engine._running_on(queue.name))
        rows = self._store.dequeue(
            queue.name,
            engine.application_version,
            engine.executor_id,
            budget,
            concurrency=queue.concurrency,
            rate_limit=queue.rate_limit,
        )
        for row in rows:
            self._dispatch(row)
        return len(rows)
