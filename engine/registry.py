"""What an engine knows about its code: registered workflows, step options, declared queues, and
the application version (a hash of the workflows' source unless given)."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine import errors
from engine.queues import Queue


@dataclass(frozen=True)
class WorkflowDef:
    name: str
    fn: Callable[..., Any]
    takes_input: bool
    schedule: str | None
    max_recovery_attempts: int
    is_async: bool = False  # an ``async def`` body: runs on an event loop


@dataclass(frozen=True)
class StepOptions:
    name: str
    fn: Callable[..., Any]
    max_attempts: int
    interval_seconds: float
    backoff_rate: float
    timeout: float | None = None  # seconds per attempt; None: no limit


STEP_ATTR = "__waymark_step__"


def default_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def step_options(fn: Callable[..., Any]) -> StepOptions:
    """The options of an ``@engine.step`` function, or defaults for a plain callable."""
    opts: StepOptions | None = getattr(fn, STEP_ATTR, None)
    if opts is not None:
        return opts
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return StepOptions(name=name, fn=fn, max_attempts=1, interval_seconds=1.0, backoff_rate=2.0)


def _takes_input(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= 2:
        return True
    if len(positional) == 1:
        return False
    raise errors.EngineError(
        f"workflow {name!r} must accept the context as its first parameter: "
        "def my_workflow(ctx) or def my_workflow(ctx, input)"
    )


def _source(fn: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        # Defined where source is unavailable (a REPL, exec): fall back to the compiled code,
        # constants and names included (the bytecode alone is equal for `return 1`/`return 2`).
        code = getattr(fn, "__code__", None)
        if code is None:
            return repr(fn)
        return f"{code.co_code.hex()}|{code.co_consts!r}|{code.co_names!r}"


class Registry:
    def __init__(self, application_version: str | None = None) -> None:
        self.workflows: dict[str, WorkflowDef] = {}
        self.queues: dict[str, Queue] = {}
        self._by_fn: dict[Callable[..., Any], WorkflowDef] = {}
        self._explicit_version = application_version
        self._version: str | None = None
        self.frozen_reason: str | None = None

    @property
    def application_version(self) -> str:
        if self._explicit_version is not None:
            return self._explicit_version
        if self._version is not None:
            return self._version
        return self.version_hash()

    def freeze(self, reason: str) -> None:
        """From here on the version is fixed: workflows recorded under it must stay
        recoverable, so no workflow may be registered any more."""
        if self.frozen_reason is None:
            self._version = self.application_version
            self.frozen_reason = reason

    def add(
        self,
        fn: Callable[..., Any],
        name: str | None,
        schedule: str | None,
        max_recovery_attempts: int,
    ) -> WorkflowDef:
        name = name or default_name(fn)
        if self.frozen_reason is not None:
            raise errors.EngineError(
                f"cannot register workflow {name!r}: {self.frozen_reason}; register every "
                "workflow before launch() and before the first start_workflow()"
            )
        if name in self.workflows:
            raise errors.EngineError(
                f"a workflow named {name!r} is already registered; pass name= to tell them apart"
            )
        if max_recovery_attempts < 0:
            raise ValueError(f"max_recovery_attempts must be >= 0, got {max_recovery_attempts}")
        definition = WorkflowDef(
            name,
            fn,
            _takes_input(fn, name),
            schedule,
            max_recovery_attempts,
            inspect.iscoroutinefunction(fn),
        )
        if schedule is not None and not definition.takes_input:
            raise errors.EngineError(
                f"scheduled workflow {name!r} must accept the tick time: def wf(ctx, tick)"
            )
        self.workflows[name] = definition
        self._by_fn[fn] = definition
        return definition

    def declare_queue(self, queue: Queue) -> None:
        if queue.name in self.queues:
            raise errors.EngineError(f"queue {queue.name!r} is already declared")
        self.queues[queue.name] = queue

    def schedules(self) -> dict[str, str]:
        """``{workflow name: cron}`` of the scheduled workflows."""
        return {d.name: d.schedule for d in self.workflows.values() if d.schedule is not None}

    def resolve(self, fn_or_name: Callable[..., Any] | str) -> WorkflowDef:
        if isinstance(fn_or_name, str):
            found = self.workflows.get(fn_or_name)
        else:
            found = self._by_fn.get(fn_or_name)
        if found is None:
            label = fn_or_name if isinstance(fn_or_name, str) else default_name(fn_or_name)
            raise errors.EngineError(
                f"{label!r} is not a registered workflow of this engine; decorate it with "
                "@engine.workflow() or call engine.register_workflow() before launch()"
            )
        return found

    def version_hash(self) -> str:
        """A hash of the registered workflows' source: equal in every process running this code."""
        digest = hashlib.sha256()
        for name in sorted(self.workflows):
            digest.update(name.encode())
            digest.update(b"\0")
            digest.update(_source(self.workflows[name].fn).encode())
            digest.update(b"\0")
        return digest.hexdigest()[:32]
