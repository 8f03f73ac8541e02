"""Celery distribution, kept thin: Celery only carries "run workflow <id>".

The database stays the source of truth. A dispatching worker (``runworker --dispatch celery``,
an ``Engine(..., dispatcher=CeleryDispatcher(app))``) claims queued workflows within their
queues' limits (they become PENDING under its executor ID) and sends one task per workflow. A
Celery worker process takes a workflow over with a conditional UPDATE (``take_over``: only if
still PENDING under that dispatcher) and runs it as an executor of its own, with a heartbeat.
So:
- a duplicated task finds the workflow taken and runs nothing;
- a lost task leaves the workflow with the dispatcher, which sends it again after a while;
- a killed Celery worker stops heartbeating, and its workflows are re-enqueued and handed out
  again; steps already recorded are not run again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from engine import fleet
from engine.dispatch import Handoff
from engine.engine import Engine

log = logging.getLogger("waymark.celery")

TASK_NAME = "waymark.run_workflow"
# A handed-over workflow no Celery worker took within this many seconds is sent again: once per
# interval per workflow, the interval doubling after each re-send up to RESEND_MAX_FACTOR times
# the first (so a dead fleet is not flooded with duplicates).
RESEND_AFTER_S = float(os.environ.get("WAYMARK_CELERY_RESEND_AFTER", "30"))
RESEND_MAX_FACTOR = 8


def queue_for(application_version: str) -> str:
    """The Celery queue of one application version: only workers running it consume it."""
    return f"waymark.{application_version}"


def register_task(celery_app: Any, engine_factory: Callable[..., Engine]) -> Any:
    """Register the task on ``celery_app``. ``engine_factory(executor_id=..., claim_queues=False)``
    builds this process's Engine (workflows registered, not launched; pass both on to
    ``Engine``); it is built and launched once per worker process, on the first task."""
    state: dict[str, Engine] = {}
    lock = threading.Lock()

    def local_engine() -> Engine:
        with lock:
            if "engine" not in state:
                node = fleet.node_name() or socket.gethostname()
                executor_id = f"celery-{node}-{os.getpid()}"
                # It runs what Celery hands it and claims nothing from the queues itself.
                engine = engine_factory(executor_id=executor_id, claim_queues=False)
                engine.launch()
                state["engine"] = engine
            return state["engine"]

    @celery_app.task(name=TASK_NAME, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_workflow(workflow_id: str, dispatcher_id: str) -> None:
        engine = local_engine()
        log.info(
            "taking over workflow %s from %s",
            workflow_id,
            dispatcher_id,
            extra={"action": "celery.take_over", "workflow_id": workflow_id},
        )
        engine.take_over(workflow_id, dispatcher_id)

    return run_workflow


class CeleryDispatcher:
    """An engine's ``dispatcher``: claimed workflows go to Celery workers as tasks, on the
    queue of the engine's application version (``queue_for``)."""

    def __init__(self, celery_app: Any) -> None:
        self._app = celery_app
        self._handoff: Handoff | None = None
        # Re-sent workflows: how often, and when the next re-send is due (monotonic seconds).
        self._resent: dict[str, tuple[int, float]] = {}

    def start(self, handoff: Handoff) -> None:
        self._handoff = handoff
        threading.Thread(
            target=self._resend_lost, args=(handoff,), name="waymark-celery-resend", daemon=True
        ).start()

    def dispatch(self, workflow_id: str) -> None:
        assert self._handoff is not None, "the engine starts its dispatcher at launch"
        self._send(workflow_id, self._handoff, "celery.dispatch", "handed to Celery")

    def _send(self, workflow_id: str, handoff: Handoff, action: str, what: str) -> None:
        queue = queue_for(handoff.application_version)
        try:
            self._app.send_task(TASK_NAME, args=[workflow_id, handoff.executor_id], queue=queue)
        except Exception as exc:  # broker down: the workflow stays claimed here; re-sent later
            log.warning(
                "could not hand workflow %s to Celery: %s",
                workflow_id,
                exc,
                extra={"action": "celery.send_failed", "workflow_id": workflow_id},
            )
            return
        log.info(
            "workflow %s %s (queue %s)",
            workflow_id,
            what,
            queue,
            extra={"action": action, "workflow_id": workflow_id},
        )

    def due_resends(self, workflow_ids: list[str], now: float) -> list[str]:
        """Which of the lost workflows to send again now (backoff per workflow, bounded)."""
        due = []
        for workflow_id in workflow_ids:
            count, next_at = self._resent.get(workflow_id, (0, 0.0))
            if now < next_at:
                continue
            factor = min(2**count, RESEND_MAX_FACTOR)
            self._resent[workflow_id] = (count + 1, now + RESEND_AFTER_S * factor)
            due.append(workflow_id)
        if len(self._resent) > 10_000:  # forget the oldest (taken long ago)
            for old in list(self._resent)[:5_000]:
                del self._resent[old]
        return due

    def _resend_lost(self, handoff: Handoff) -> None:
        while not handoff.stopping.wait(RESEND_AFTER_S / 3):
            try:
                lost = handoff.unclaimed(RESEND_AFTER_S)
                for workflow_id in self.due_resends(lost, time.monotonic()):
                    self._send(workflow_id, handoff, "celery.resend", "re-sent: no worker took it")
            except Exception:
                log.exception("re-send check failed", extra={"action": "celery.resend_failed"})
