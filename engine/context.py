"""WorkflowContext: what a workflow body sees, and the checkpointing of its steps."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine import errors, registry, serialization
from engine.records import Status
from engine.store import base

if TYPE_CHECKING:
    from engine.engine import Engine

_current: contextvars.ContextVar[WorkflowContext | None] = contextvars.ContextVar(
    "waymark_workflow_context", default=None
)


def current() -> WorkflowContext | None:
    """The context of the workflow running on this thread, if any."""
    return _current.get()


class Interrupted(BaseException):
    """Stops a workflow body at a step boundary (cancelled, or the engine shutting down).

    A ``BaseException`` so that a workflow's ``except Exception`` cannot swallow it.
    """

    def __init__(self, status: str | None) -> None:
        super().__init__(status)
        self.status = status  # the status the row holds now; None: shutdown, left PENDING


def _not_yet(feature: str) -> NotImplementedError:
    return NotImplementedError(
        f"{feature} is not implemented in this version of Waymark yet (planned: control and "
        "time features); nothing was recorded"
    )


class WorkflowContext:
    def __init__(self, engine: Engine, workflow_id: str, recorded: dict[int, Any] | None) -> None:
        self._engine = engine
        self._store = engine._store
        self.workflow_id = workflow_id
        # Steps recorded by earlier executions, by step ID; None on a first execution, where
        # there is nothing to read back (no round trip per step to look for a checkpoint).
        self._recorded = recorded
        self._next_step = 0
        self._in_step = False
        # A determinism violation ends the workflow in ERROR even if the body catches it.
        self.fatal: errors.NonDeterministicWorkflowError | None = None

    def __enter__(self) -> WorkflowContext:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)

    # -- steps -----------------------------------------------------------------------------

    def run_step(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as a checkpointed step (replayed from its record)."""
        opts = registry.step_options(fn)
        if self._in_step:  # a step called from inside a step is part of the outer one
            return opts.fn(*args, **kwargs)
        self._check_running()
        self._next_step += 1
        step_id = self._next_step
        if self._recorded is not None and step_id in self._recorded:
            return self._replay(step_id, opts.name, self._recorded[step_id])
        started = base.now_ms()
        what = f"the output of step {opts.name!r} (step {step_id} of workflow {self.workflow_id!r})"
        self._in_step = True
        try:
            value = self._attempt(opts, args, kwargs)
        except Exception as exc:
            adopted, recorded = self._record(
                step_id, opts.name, None, serialization.encode_error(exc), started
            )
            if adopted:
                return recorded
            raise
        finally:
            self._in_step = False
        output = serialization.dumps(value, what)
        adopted, recorded = self._record(step_id, opts.name, output, None, started)
        if adopted:
            return recorded
        # Hand back what a replay would: the JSON form (a tuple comes back as a list either way).
        return serialization.loads(output, what)

    def _attempt(
        self, opts: registry.StepOptions, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        attempt = 1
        while True:
            try:
                return opts.fn(*args, **kwargs)
            except Exception:
                if attempt >= opts.max_attempts:
                    raise
                delay = opts.interval_seconds * opts.backoff_rate ** (attempt - 1)
                if self._engine._stopping.wait(delay):
                    raise Interrupted(None) from None
                attempt += 1

    def _record(
        self, step_id: int, name: str, output: str | None, error: str | None, started: int
    ) -> tuple[bool, Any]:
        """Checkpoint a step; (True, outcome) when another execution's record was adopted."""
        inserted, status = self._store.record_step(
            workflow_id=self.workflow_id,
            step_id=step_id,
            name=name,
            output=output,
            error=error,
            started=started,
        )
        if not inserted:
            # Another execution of this workflow recorded the step first: adopt its outcome.
            row = self._store.get_step(self.workflow_id, step_id)
            if row is None:
                raise errors.EngineError(
                    f"step {step_id} of workflow {self.workflow_id!r} conflicted on insert but "
                    "has no record; was the workflow deleted while it ran?"
                )
            return True, self._replay(step_id, name, row)
        if status != Status.PENDING:
            raise Interrupted(status)
        return False, None

    def _replay(self, step_id: int, name: str, row: Any) -> Any:
        recorded_name = row["function_name"]
        if recorded_name != name:
            self.fatal = errors.NonDeterministicWorkflowError(
                self.workflow_id, step_id, recorded_name, name
            )
            raise self.fatal
        what = f"the recorded outcome of step {step_id} of workflow {self.workflow_id!r}"
        if row["error"] is not None:
            raise serialization.rebuild_error(row["error"], what)
        return serialization.loads(row["output"], what)

    def _check_running(self) -> None:
        if self._engine._stopping.is_set():
            raise Interrupted(None)

    # -- features that other parts of the roadmap bring -------------------------------------

    def sleep(self, seconds: float) -> None:
        raise _not_yet("ctx.sleep (durable sleep)")

    def go(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        raise _not_yet("ctx.go (durable concurrency)")

    def select(self, futures: list[Any]) -> Any:
        raise _not_yet("ctx.select (durable concurrency)")

    def start_workflow(self, fn: Any, input: Any = None, **options: Any) -> Any:
        raise _not_yet("ctx.start_workflow (child workflows)")

    def send(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        raise _not_yet("ctx.send (messages)")

    def recv(self, topic: str | None = None, timeout: float = 60.0) -> Any:
        raise _not_yet("ctx.recv (messages)")

    def set_event(self, key: str, value: Any) -> None:
        raise _not_yet("ctx.set_event (events)")
