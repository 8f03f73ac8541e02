"""manage.py runworker: the executor, queue workers, recovery and scheduler in one process.

SIGTERM/SIGINT drain it: no new work is taken, running steps may finish for --grace seconds,
and whatever is unfinished stays PENDING for recovery (never CANCELLED).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from console import retention, worker
from engine import metrics


class Command(BaseCommand):
    help = "Run a Waymark worker: workflows, queues, recovery of dead executors, schedules."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--executor-id",
            default=f"{socket.gethostname()}-{os.getpid()}",
            help="this worker's executor ID (default: host-pid)",
        )
        parser.add_argument(
            "--queues",
            default=None,
            help="comma-separated queue names to take work from (default: all)",
        )
        parser.add_argument(
            "--concurrency", type=int, default=None, help="workflow threads (default: 16)"
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=10.0,
            help="seconds running steps may finish in after SIGTERM",
        )
        parser.add_argument(
            "--dispatch",
            choices=["local", "celery"],
            default="local",
            help="run claimed workflows here, or hand them to Celery workers",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="serve this worker's Prometheus metrics at http://HOST:PORT/metrics",
        )
        parser.add_argument(
            "--metrics-host",
            default="127.0.0.1",
            help="address the metrics endpoint listens on (default: 127.0.0.1)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Log lines go where settings.LOGGING sends them ("waymark": stderr, one line per event,
        # JSON objects with WAYMARK_LOG_FORMAT=json).
        root = logging.getLogger("waymark")
        queues = options["queues"].split(",") if options["queues"] else None
        dispatcher = None
        if options["dispatch"] == "celery":  # imported only when asked for: Celery is optional
            from console.celery import app as celery_app
            from engine.contrib import celery as celery_contrib

            dispatcher = celery_contrib.CeleryDispatcher(celery_app)
        engine = worker.build_engine(
            executor_id=options["executor_id"],
            concurrency=options["concurrency"],
            queues=queues,
            dispatcher=dispatcher,
        )

        if options["metrics_port"] is not None:
            metrics.serve(options["metrics_port"], options["metrics_host"])
            root.info(
                "metrics at http://%s:%d/metrics",
                options["metrics_host"],
                options["metrics_port"],
                extra={"action": "worker.metrics", "port": options["metrics_port"]},
            )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        root.info(
            "worker %s starting",
            engine.executor_id,
            extra={"action": "worker.start", "executor_id": engine.executor_id},
        )
        alerts = worker.start_alerts(engine, stop)
        engine.launch()  # the system tables exist before retention's first pass
        if retention.start(engine.lifecycle, engine.executor_id, stop):
            root.info(
                "retention policy: %s",
                retention.policy().as_dict(),
                extra={"action": "retention.start", "executor_id": engine.executor_id},
            )
        engine.run_forever(stop, grace=options["grace"])
        alerts.join(timeout=10)
        root.info(
            "worker %s stopped",
            engine.executor_id,
            extra={"action": "worker.stop", "executor_id": engine.executor_id},
        )
