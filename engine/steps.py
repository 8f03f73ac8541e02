"""The ``@engine.step`` decorator: what calling a step does where it is called (a checkpointed
step in a workflow, sync or async; a plain call outside one; a plain call inside a step)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from engine import errors, registry
from engine.admission import seconds
from engine.async_context import current_async
from engine.context import current_context

F = TypeVar("F", bound=Callable[..., Any])


def decorator(
    results: object,
    name: str | None,
    *,
    max_attempts: int,
    interval_seconds: float,
    backoff_rate: float,
    timeout: float | None,
) -> Callable[[F], F]:
    """``results``: the engine's results (who this engine is: a workflow of another engine
    does not record this step)."""
    if timeout is not None:
        timeout = seconds(timeout, "step timeout")
        if timeout == 0:
            raise ValueError("step timeout must be > 0 seconds, or None for no limit")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    if interval_seconds < 0 or backoff_rate <= 0:
        raise ValueError("interval_seconds must be >= 0 and backoff_rate > 0")

    def decorate(fn: F) -> F:
        is_async = inspect.iscoroutinefunction(fn)

        def step_call(*args: Any, **kwargs: Any) -> Any:
            actx = current_async()
            if actx is not None:
                if actx.in_step():  # part of the enclosing step: a plain call
                    return fn(*args, **kwargs)
                if not is_async:
                    raise errors.EngineError(
                        f"step {step_call.__qualname__!r} is sync and workflow "
                        f"{actx.workflow_id!r} async: calling it would block the event "
                        "loop; use 'await ctx.run_step_async(step, ...)' (runs it in a "
                        "thread) or make the step 'async def'"
                    )
                return actx.run_step_async(step_call, *args, **kwargs)
            ctx = current_context()
            if ctx is None:  # outside a workflow: a plain call
                return fn(*args, **kwargs)
            if is_async and ctx.records_for(results):
                raise errors.EngineError(
                    f"step {step_call.__qualname__!r} is async and workflow "
                    f"{ctx.workflow_id!r} sync: make the workflow 'async def' and "
                    "'await' the step, or give the sync workflow a sync step"
                )
            return ctx.run_step(step_call, *args, **kwargs)

        options = registry.StepOptions(
            name=name or fn.__qualname__,
            fn=fn,
            max_attempts=max_attempts,
            interval_seconds=interval_seconds,
            backoff_rate=backoff_rate,
            timeout=timeout,
        )
        setattr(step_call, registry.STEP_ATTR, options)
        step_call.__name__ = fn.__name__
        step_call.__qualname__ = fn.__qualname__
        step_call.__doc__ = fn.__doc__
        step_call.__module__ = fn.__module__
        step_call.__wrapped__ = fn  # type: ignore[attr-defined]
        return step_call  # type: ignore[return-value]

    return decorate
