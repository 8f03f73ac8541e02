"""Building the engine of this deployment from settings (used by runworker and the console).

WAYMARK_APP names a callable ``module:function`` that registers the application's workflows,
steps and queues on an Engine it is given (the demo's is ``demo.app:build``).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from console import bulk
from engine import Client, Engine
from engine.dispatch import Dispatcher


def load_app(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"WAYMARK_APP {path!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module_name), attribute)


def build_engine(
    *,
    executor_id: str | None = None,
    concurrency: int | None = None,
    queues: Sequence[str] | None = None,
    dispatcher: Dispatcher | None = None,
    claim_queues: bool = True,
) -> Engine:
    """``dispatcher``: hand claimed workflows to other processes (runworker --dispatch celery);
    ``claim_queues=False``: run only what is handed over (a Celery worker process)."""
    options: dict[str, Any] = {
        "executor_id": executor_id,
        # Every worker also serves the console's queue: bulk actions run wherever one is.
        "queues": [*queues, bulk.QUEUE] if queues is not None else None,
        "heartbeat_timeout": settings.WAYMARK_HEARTBEAT_TIMEOUT,
        "dispatcher": dispatcher,
        "claim_queues": claim_queues,
    }
    if concurrency is not None:
        options["max_workflow_threads"] = concurrency
    engine = Engine(
        settings.WAYMARK_APP_NAME,
        settings.WAYMARK_DATABASE_URL,
        schema=settings.WAYMARK_SCHEMA,
        **options,
    )
    load_app(settings.WAYMARK_APP)(engine)
    register_console_workflows(engine)
    return engine


def register_console_workflows(engine: Engine) -> None:
    """The console's own workflows (bulk actions, alert notifications) on the application's
    engine: a separate engine in the worker would also serve the engine's internal queue and
    take (and fail) the application's workflows started by name without a version. Every
    process computing the application version must register exactly these."""
    from console.alerts import notify  # imports Django models: only once Django is set up

    bulk.register(engine)
    notify.register(engine)


def start_alerts(engine: Engine, stop: threading.Event) -> threading.Thread:
    """Evaluate the alert rules in this worker until ``stop``: every worker runs the loop, the
    one holding the lease does the work (console/alerts/lease.py). Notifications are pinned to
    this worker's application version: its workers have the notification workflow."""
    from console.alerts import evaluator

    client = Client(settings.WAYMARK_DATABASE_URL, schema=settings.WAYMARK_SCHEMA)
    loop = evaluator.Evaluator(
        engine.executor_id, client, application_version=engine.application_version
    )

    def run() -> None:
        try:
            loop.run_forever(stop)
        finally:
            client.close()

    thread = threading.Thread(target=run, name="waymark-alerts", daemon=True)
    thread.start()
    return thread


class ActionFormatter(logging.Formatter):
    """One line per event: time, level, the stable ``action`` key, then the message."""

    def format(self, record: logging.LogRecord) -> str:
        action = getattr(record, "action", "-")
        line = (
            f"{self.formatTime(record)} {record.levelname:<7} action={action} {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line
