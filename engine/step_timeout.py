"""A step attempt under a time limit (``@engine.step(timeout=...)``).

A sync function cannot be interrupted from outside, so an attempt with a limit runs on a
thread of its own; when the limit passes, the attempt fails with ``StepTimeoutError`` and the
thread is abandoned: whatever it returns later is ignored (nothing of it is recorded).
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from engine import errors, registry


def call(opts: registry.StepOptions, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``opts.fn(*args, **kwargs)``, failing with ``StepTimeoutError`` after ``opts.timeout``."""
    if opts.timeout is None:
        return opts.fn(*args, **kwargs)
    done = threading.Event()
    outcome: list[Any] = []
    failure: list[BaseException] = []
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome.append(context.run(opts.fn, *args, **kwargs))
        except BaseException as exc:  # handed to the waiting attempt, which re-raises it
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name=f"waymark-step-{opts.name}", daemon=True).start()
    if not done.wait(opts.timeout):
        raise errors.StepTimeoutError(opts.name, opts.timeout)
    if failure:
        raise failure[0]
    return outcome[0]
