"""Building the engine of this deployment from settings (used by runworker and the console).

WAYMARK_APP names a callable ``module:function`` that registers the application's workflows,
steps and queues on an Engine it is given (the demo's is ``demo.app:build``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from console import bulk
from engine import Engine


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
) -> Engine:
    options: dict[str, Any] = {
        "executor_id": executor_id,
        "queues": queues,
        "heartbeat_timeout": settings.WAYMARK_HEARTBEAT_TIMEOUT,
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
    return engine


def build_console_engine(*, executor_id: str | None = None) -> Engine:
    """The console's own engine, run by every worker beside the application's: it serves only
    the console's queue (bulk actions, console/bulk.py), with threads of its own.

    Apart, because on the application's engine a bulk action would wait for a free thread
    behind the very workflows it is meant to cancel (an incident's usual shape: every thread
    stuck in a hung step), and because registering it there would change the application's
    version hash and strand its unfinished workflows. Its version is fixed (bulk.VERSION), so
    any worker's console engine recovers a bulk action a dead one left.
    """
    engine = Engine(
        f"{settings.WAYMARK_APP_NAME}-console",
        settings.WAYMARK_DATABASE_URL,
        schema=settings.WAYMARK_SCHEMA,
        application_version=bulk.VERSION,
        executor_id=f"{executor_id or 'local'}/console",
        max_workflow_threads=bulk.THREADS,
        heartbeat_timeout=settings.WAYMARK_HEARTBEAT_TIMEOUT,
    )
    bulk.register(engine)
    return engine


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
