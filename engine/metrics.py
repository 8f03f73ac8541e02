"""Worker metrics (Prometheus): what this process executed, how long it took, how it ended.

Each engine reports to a ``Metrics`` object; by default the process-wide one on the dedicated
registry ``registry()`` (served by ``runworker --metrics-port`` or ``serve()``). Labels are
bounded: registered workflow and step names, queue names, final statuses, never IDs.
``NullMetrics`` records nothing (``Engine(metrics=False)``, and a store used without an engine).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram

_REGISTRY = CollectorRegistry(auto_describe=True)
_default: Metrics | None = None
_default_lock = threading.Lock()

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def registry() -> CollectorRegistry:
    """The worker-side registry every default ``Metrics`` reports to."""
    return _REGISTRY


class NullMetrics:
    """Records nothing."""

    def workflow_started(self, workflow: str) -> None:
        pass

    def workflow_finished(self, workflow: str, status: str, seconds: float) -> None:
        pass

    def queue_wait(self, queue: str, seconds: float) -> None:
        pass

    def step(self, step: str, outcome: str, seconds: float) -> None:
        pass

    def step_retried(self, step: str) -> None:
        pass

    def recovered(self, count: int = 1) -> None:
        pass

    def commit_batch(self, size: int) -> None:
        pass

    def db_error_retried(self) -> None:
        pass


class Metrics(NullMetrics):
    """The worker's counters and histograms on ``registry`` (default: ``registry()``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else _REGISTRY
        self.registry = reg
        self._children: dict[tuple[object, ...], Any] = {}
        self._started = Counter(
            "waymark_workflows_started", "Workflows started (first execution)", ["workflow"],
            registry=reg,
        )  # fmt: skip
        self._finished = Counter(
            "waymark_workflows_finished",
            "Workflows whose final status this process wrote",
            ["workflow", "status"],
            registry=reg,
        )
        self._duration = Histogram(
            "waymark_workflow_duration_seconds",
            "Created to final status, for workflows finished here",
            ["workflow"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self._queue_wait = Histogram(
            "waymark_queue_wait_seconds",
            "Created to dequeued, for workflows claimed from a queue",
            ["queue"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self._steps = Counter(
            "waymark_steps", "Steps executed (not replayed)", ["step", "outcome"], registry=reg
        )
        self._step_duration = Histogram(
            "waymark_step_duration_seconds",
            "A step's execution, all attempts",
            ["step"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self._retries = Counter(
            "waymark_step_retries", "Step attempts that failed and were retried", ["step"],
            registry=reg,
        )  # fmt: skip
        self._recoveries = Counter(
            "waymark_recoveries",
            "Workflows recovered (own at launch, or re-enqueued from dead executors)",
            registry=reg,
        )
        self._batch = Histogram(
            "waymark_commit_batch_size",
            "Writes committed together by the group committer",
            buckets=BATCH_BUCKETS,
            registry=reg,
        )
        self._db_retries = Counter(
            "waymark_db_errors_retried",
            "Database operations retried after a transient error",
            registry=reg,
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        """The labelled child, cached (``labels()`` takes a lock and builds a key each call)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def workflow_started(self, workflow: str) -> None:
        self._child(self._started, workflow).inc()

    def workflow_finished(self, workflow: str, status: str, seconds: float) -> None:
        self._child(self._finished, workflow, status).inc()
        self._child(self._duration, workflow).observe(max(seconds, 0.0))

    def queue_wait(self, queue: str, seconds: float) -> None:
        self._child(self._queue_wait, queue).observe(max(seconds, 0.0))

    def step(self, step: str, outcome: str, seconds: float) -> None:
        self._child(self._steps, step, outcome).inc()
        self._child(self._step_duration, step).observe(max(seconds, 0.0))

    def step_retried(self, step: str) -> None:
        self._child(self._retries, step).inc()

    def recovered(self, count: int = 1) -> None:
        self._recoveries.inc(count)

    def commit_batch(self, size: int) -> None:
        self._batch.observe(size)

    def db_error_retried(self) -> None:
        self._db_retries.inc()


def default() -> Metrics:
    """The process-wide ``Metrics`` on ``registry()`` (made once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve ``registry()`` at http://host:port/metrics from a daemon thread.

    Under ``PROMETHEUS_MULTIPROC_DIR`` (Celery prefork children) it serves the aggregate of
    every process that wrote there instead (prometheus_client's multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        prometheus_client.start_http_server(port, addr=host, registry=collected)
        return
    prometheus_client.start_http_server(port, addr=host, registry=_REGISTRY)


def serve_from_env() -> int | None:
    """Serve when ``WAYMARK_METRICS_PORT`` is set (a Celery worker); the port, or None."""
    port = os.environ.get("WAYMARK_METRICS_PORT")
    if not port:
        return None
    serve(int(port), os.environ.get("WAYMARK_METRICS_HOST", "127.0.0.1"))
    return int(port)
