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
from collections.abc import Callable
from typing import Any

from engine.dispatch import Handoff
from engine.engine import Engine

log = logging.getLogger("waymark.celery")

TASK_NAME = "waymark.run_workflow"
# A handed-over workflow no Celery worker took within this many seconds is sent again.
RESEND_AFTER_S = float(os.environ.get("WAYMARK_CELERY_RESEND_AFTER", "30"))


def register_task(celery_app: Any, engine_factory: Callable[..., Engine]) -> Any:
    """Register the task on ``celery_app``. ``engine_factory(executor_id=..., claim_queues=False)``
    builds this process's Engine (workflows registered, not launched; pass both on to
    ``Engine``); it is built and launched once per worker process, on the first task."""
    state: dict[str, Engine] = {}
    lock = threading.Lock()

    def local_engine() -> Engine:
        with lock:
            if "engine" not in state:
                executor_id = f"celery-{socket.gethostname()}-{os.getpid()}"
                # It runs what Celery hands it and claims nothing from the queues itself.
                engine = engine_factory(executor_id=executor_id, claim_queues=False)
                engine.launch()
                state["engine"] = engine
            return state["engine"]

    @celery_app.task(name=TASK_NAME, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_workflow(workflow_id: str, dispatcher_id: str) -> None:
        local_engine().take_over(workflow_id, dispatcher_id)

    return run_workflow


class CeleryDispatcher:
    """An engine's ``dispatcher``: claimed workflows go to Celery workers as tasks."""

    def __init__(self, celery_app: Any) -> None:
        self._app = celery_app
        self._handoff: Handoff | None = None

    def start(self, handoff: Handoff) -> None:
        self._handoff = handoff
        threading.Thread(
            target=self._resend_lost, args=(handoff,), name="waymark-celery-resend", daemon=True
        ).start()

    def dispatch(self, workflow_id: str) -> None:
        assert self._handoff is not None, "the engine starts its dispatcher at launch"
        try:
            self._app.send_task(TASK_NAME, args=[workflow_id, self._handoff.executor_id])
        except Exception as exc:  # broker down: the workflow stays claimed here; re-sent later
            log.warning(
                "could not hand workflow %s to Celery: %s",
                workflow_id,
                exc,
                extra={"action": "celery.send_failed"},
            )

    def _resend_lost(self, handoff: Handoff) -> None:
        while not handoff.stopping.wait(RESEND_AFTER_S / 3):
            try:
                for workflow_id in handoff.unclaimed(RESEND_AFTER_S):
                    log.warning(
                        "re-sending workflow %s: no Celery worker took it",
                        workflow_id,
                        extra={"action": "celery.resend", "workflow_id": workflow_id},
                    )
                    self._app.send_task(TASK_NAME, args=[workflow_id, handoff.executor_id])
            except Exception:
                log.exception("re-send check failed", extra={"action": "celery.resend_failed"})
