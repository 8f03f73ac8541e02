"""One sync step's attempts: retries with backoff, a time limit per attempt, every failure
recorded, a span per attempt when tracing is on (``async_steps.py`` is the async twin)."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import context as otel_context

from engine import attempts, clock, registry, step_timeout, tracing
from engine.checkpoints import Interrupted
from engine.metrics import NullMetrics

# What a traced step attempt needs: its workflow ID, step ID and (off the workflow's thread) the
# context to parent its span in.
Traced = tuple[str, int, "otel_context.Context | None"]


def attempt(
    stopping: threading.Event,
    opts: registry.StepOptions,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    failed: attempts.OnFailure | None = None,
    metrics: NullMetrics | None = None,
    traced: Traced | None = None,
) -> Any:
    """Call a step function, retrying with backoff up to its ``max_attempts`` (an attempt
    longer than its ``timeout`` fails with ``StepTimeoutError`` and is retried the same way);
    ``failed`` is told of every failed attempt (to record it); each attempt a span when
    ``traced`` (workflow ID, step ID, parent context)."""
    tries = 1
    while True:
        started = clock.now_ms()
        try:
            if traced is None:
                return step_timeout.call(opts, args, kwargs)
            workflow_id, step_id, parent = traced
            with tracing.step_span(workflow_id, step_id, opts.name, tries, parent):
                return step_timeout.call(opts, args, kwargs)
        except Exception as exc:
            if failed is not None:
                failed(exc, started)
            if tries >= opts.max_attempts:
                raise
            delay = opts.interval_seconds * opts.backoff_rate ** (tries - 1)
            if metrics is not None:
                metrics.step_retried(opts.name)
            if stopping.wait(delay):
                raise Interrupted(None) from None
            tries += 1
