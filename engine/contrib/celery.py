"""Celery distribution, kept thin: Celery only carries "run workflow <id>".

The database stays the source of truth. A dispatching worker (``runworker --dispatch celery``)
claims queued workflows within their queues' limits (they become PENDING under its executor
ID) and sends one task per workflow. A Celery worker process takes a workflow over with a
conditional UPDATE (``take_over``: only if still PENDING under that dispatcher) and runs it as
an executor of its own, with a heartbeat. So:
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

from engine.engine import Engine

log = logging.getLogger("waymark.celery")

TASK_NAME = "waymark.run_workflow"
# A handed-over workflow no Celery worker took within this many seconds is sent again.
RESEND_AFTER_S = float(os.environ.get("WAYMARK_CELERY_RESEND_AFTER", "30"))


def register_task(celery_app: Any, engine_factory: Callable[[str], Engine]) -> Any:
    """Register the task on ``celery_app``. ``engine_factory(executor_id)`` builds this
    process's Engine (workflows registered, not launched); it is built and launched once per
    worker process, on the first task."""
    state: dict[str, Engine] = {}
    lock = threading.Lock()

    def local_engine() -> Engine:
        with lock:
            if "engine" not in state:
                engine = engine_factory(f"celery-{socket.gethostname()}-{os.getpid()}")
                engine.serve_queues = False  # it runs what Celery hands it, claims nothing
                engine.launch()
                state["engine"] = engine
            return state["engine"]

    @celery_app.task(name=TASK_NAME, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_workflow(workflow_id: str, dispatcher_id: str) -> None:
        local_engine().take_over(workflow_id, dispatcher_id)

    return run_workflow


def dispatch_to_celery(engine: Engine, celery_app: Any) -> None:
    """Make ``engine``'s worker loop hand claimed workflows to Celery instead of running them."""

    def send(row: Any) -> None:
        try:
            celery_app.send_task(TASK_NAME, args=[row["workflow_uuid"], engine.executor_id])
        except Exception as exc:  # broker down: the workflow stays claimed here; re-sent later
            log.warning(
                "could not hand workflow %s to Celery: %s",
                row["workflow_uuid"],
                exc,
                extra={"action": "celery.send_failed"},
            )

    def resend_lost() -> None:
        while not engine._stopping.wait(RESEND_AFTER_S / 3):
            try:
                for workflow_id in engine._store.handed_over_unclaimed(
                    engine.executor_id, int(RESEND_AFTER_S * 1000)
                ):
                    log.warning(
                        "re-sending workflow %s: no Celery worker took it",
                        workflow_id,
                        extra={"action": "celery.resend", "workflow_id": workflow_id},
                    )
                    celery_app.send_task(TASK_NAME, args=[workflow_id, engine.executor_id])
            except Exception:
                log.exception("re-send check failed", extra={"action": "celery.resend_failed"})

    engine.dispatch = send
    threading.Thread(target=resend_lost, name="waymark-celery-resend", daemon=True).start()
