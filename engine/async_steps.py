"""One async step's attempts: the async twin of ``context.attempt``.

The same options as a sync step: retries with backoff up to ``max_attempts``, a ``timeout``
per attempt (``StepTimeoutError``; an async attempt is cancelled, a sync one run in a thread is
abandoned as in ``step_timeout.py``), every failed attempt recorded, a span per attempt when
tracing is on, and a retry counted in the metrics.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from engine import clock, errors, registry, tracing
from engine.metrics import NullMetrics

# Set inside an async step's body: durable calls there are part of the step (plain calls).
in_step: contextvars.ContextVar[bool] = contextvars.ContextVar("waymark_async_step", default=False)

# Told of a failed attempt (the exception, when it started in epoch ms), to record it.
OnFailure = Callable[[BaseException, int], Awaitable[None]]
# Awaited between attempts: the backoff (raises when the workflow must stop instead).
Pause = Callable[[float], Awaitable[None]]
# (workflow ID, step ID) of a traced attempt; its span's parent is the task's current span.
Traced = tuple[str, int]


async def call(opts: registry.StepOptions, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """One attempt: an async function on the loop, a sync one in a thread; past
    ``opts.timeout`` it fails with ``StepTimeoutError``."""
    if inspect.iscoroutinefunction(opts.fn):
        work = opts.fn(*args, **kwargs)
    else:
        work = asyncio.to_thread(functools.partial(opts.fn, *args, **kwargs))
    if opts.timeout is None:
        return await work
    limit = asyncio.timeout(opts.timeout)
    try:
        async with limit:
            return await work
    except TimeoutError:
        if limit.expired():  # ours, not a TimeoutError the step raised itself
            raise errors.StepTimeoutError(opts.name, opts.timeout) from None
        raise


async def attempt(
    opts: registry.StepOptions,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    pause: Pause,
    *,
    once: bool = False,
    failed: OnFailure | None = None,
    metrics: NullMetrics | None = None,
    traced: Traced | None = None,
) -> Any:
    """Call the step, retrying with backoff (``once``: a single attempt, nothing recorded:
    a step called from inside a step is part of the outer one)."""
    tries = 1
    while True:
        started = clock.now_ms()
        token = in_step.set(True)
        try:
            if traced is None:
                return await call(opts, args, kwargs)
            workflow_id, step_id = traced
            with tracing.step_span(workflow_id, step_id, opts.name, tries):
                return await call(opts, args, kwargs)
        except Exception as exc:
            if once:
                raise
            if failed is not None:
                await failed(exc, started)
            if tries >= opts.max_attempts:
                raise
        finally:
            in_step.reset(token)
        if metrics is not None:
            metrics.step_retried(opts.name)
        await pause(opts.interval_seconds * opts.backoff_rate ** (tries - 1))
        tries += 1
