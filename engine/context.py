"""WorkflowContext: what a workflow body sees, and the checkpointing of everything it does.

Every durable operation takes the next step ID, in call order, on the workflow's own thread:
on a replay the same calls reach the same IDs and find their records.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engine import errors, futures, handle, registry, serialization
from engine.records import FINAL_STATUSES, Status
from engine.store import base

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.execution import Run as _Run

_current: contextvars.ContextVar[WorkflowContext | None] = contextvars.ContextVar(
    "waymark_workflow_context", default=None
)

# Names of the steps the engine records for its own operations.
SLEEP = "waymark.sleep"
SEND = "waymark.send"
RECV = "waymark.recv"
RECV_TIMEOUT = "waymark.recv.timeout"
SET_EVENT = "waymark.set_event"
GET_EVENT = "waymark.get_event"
GET_EVENT_TIMEOUT = "waymark.get_event.timeout"
GET_RESULT = "waymark.get_result"
SELECT = "waymark.select"

# A sleep longer than this parks the workflow (no thread held) instead of waiting in place.
PARK_AFTER_S = 2.0
# While waiting, how often to look for a cancel made by another process (on SQLite, which
# cannot push it; Postgres delivers it at once through LISTEN/NOTIFY).
STATUS_RECHECK_S = 1.0


def current() -> WorkflowContext | None:
    """The context of the workflow running on this thread, if any."""
    return _current.get()


class Interrupted(BaseException):
    """Stops a workflow body (cancelled, timed out, taken over, or the engine shutting down).

    A ``BaseException`` so that a workflow's ``except Exception`` cannot swallow it.
    """

    def __init__(self, status: str | None) -> None:
        super().__init__(status)
        self.status = status  # the status the row holds now; None: shutdown, left PENDING


class Fenced(Interrupted):
    """This execution lost its workflow: the executor was declared dead (a long pause, a lost
    network) and the workflow handed to another, which runs it now. It stops at this step
    boundary and writes nothing more: no cancel, no finish; the new owner carries on."""

    def __init__(self, owner: str | None) -> None:
        super().__init__(None)
        self.owner = owner


class Parked(BaseException):
    """Unwinds a workflow body into a long durable sleep; it is replayed at ``wake_at``."""

    def __init__(self, wake_at: int) -> None:
        super().__init__(wake_at)
        self.wake_at = wake_at


def seconds(value: float | dt.timedelta, what: str) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{what} must be a number of seconds >= 0 or a timedelta, got {value!r}")
    return float(value)


class WorkflowContext:
    def __init__(
        self,
        engine: Engine,
        run: _Run,
        workflow_id: str,
        recorded: dict[int, Any] | None,
        deadline_ms: int | None,
    ) -> None:
        self._engine = engine
        self._store = engine._store
        self._run = run
        self.workflow_id = workflow_id
        self.deadline_ms = deadline_ms
        # Steps recorded by earlier executions, by step ID; None on a first execution, where
        # there is nothing to read back (no round trip per step to look for a checkpoint).
        self._recorded = recorded
        self._next_step = 0
        self._in_step = False
        self._thread = threading.current_thread()
        self._futures = futures.FutureSet()
        # A determinism violation ends the workflow in ERROR even if the body catches it.
        self.fatal: errors.NonDeterministicWorkflowError | None = None

    def __enter__(self) -> WorkflowContext:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)

    # -- step IDs, records, replay -----------------------------------------------------------

    def _take_step(self, name: str) -> tuple[int, Any | None]:
        """The next step ID, and its record if an earlier execution made one."""
        if threading.current_thread() is not self._thread:
            raise errors.EngineError(
                f"workflow {self.workflow_id!r}: durable operations (steps, sleep, send, ...) "
                "must be called from the workflow's own thread, not from inside ctx.go"
            )
        self._check_running()
        self._next_step += 1
        step_id = self._next_step
        row = self._recorded.get(step_id) if self._recorded is not None else None
        if row is not None and row["function_name"] != name:
            self.fatal = errors.NonDeterministicWorkflowError(
                self.workflow_id, step_id, row["function_name"], name
            )
            raise self.fatal
        return step_id, row

    def _replay(self, step_id: int, row: Any) -> Any:
        what = f"the recorded outcome of step {step_id} of workflow {self.workflow_id!r}"
        if row["error"] is not None:
            raise serialization.rebuild_error(row["error"], what)
        return serialization.loads(row["output"], what)

    def _record(
        self,
        step_id: int,
        name: str,
        output: str | None,
        error: str | None,
        started: int,
        child_workflow_id: str | None = None,
    ) -> tuple[bool, Any]:
        """Checkpoint a step; (True, outcome) when another execution's record was adopted."""
        outcome = self._store.record_step(
            self._engine.executor_id,
            workflow_id=self.workflow_id,
            step_id=step_id,
            name=name,
            output=output,
            error=error,
            started=started,
            child_workflow_id=child_workflow_id,
        )
        return self._after_record(step_id, outcome)

    def _after_record(self, step_id: int, outcome: base.StepOutcome) -> tuple[bool, Any]:
        """Stop here if the workflow was taken from us or cancelled; else go on, adopting the
        step's record if another execution made it first."""
        inserted, status, owned = outcome
        if not inserted:
            # Another execution of this workflow recorded the step first: adopt its outcome,
            # unless that execution is the workflow's new owner (then we stop: running on
            # would run every later step twice).
            row = self._store.get_step(self.workflow_id, step_id)
            if row is None:
                raise errors.EngineError(
                    f"step {step_id} of workflow {self.workflow_id!r} conflicted on insert but "
                    "has no record; was the workflow deleted while it ran?"
                )
            if row["owner"] != self._engine.executor_id:
                raise Fenced(row["owner"])
            return True, self._replay(step_id, row)
        if not owned:
            raise Fenced(None)
        if status != Status.PENDING:
            raise Interrupted(status)
        return False, None

    def _check_running(self) -> None:
        if self._engine._stopping.is_set():
            raise Interrupted(None)
        if self._run.stopped is not None:
            raise Interrupted(self._run.stopped)

    def _record_value(
        self,
        step_id: int,
        name: str,
        value: Any,
        started: int,
        child_workflow_id: str | None = None,
    ) -> Any:
        what = f"the result of {name} (step {step_id} of workflow {self.workflow_id!r})"
        output = serialization.dumps(value, what, self._engine.max_payload_bytes)
        adopted, recorded = self._record(step_id, name, output, None, started, child_workflow_id)
        return recorded if adopted else serialization.loads(output, what)

    # -- steps -------------------------------------------------------------------------------

    def run_step(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as a checkpointed step (replayed from its record)."""
        opts = registry.step_options(fn)
        if self._in_step:  # a step called from inside a step is part of the outer one
            return opts.fn(*args, **kwargs)
        step_id, row = self._take_step(opts.name)
        if row is not None:
            return self._replay(step_id, row)
        started = base.now_ms()
        self._in_step = True
        try:
            value = attempt(self._engine, opts, args, kwargs)
        except Exception as exc:
            adopted, recorded = self._record(
                step_id, opts.name, None, serialization.encode_error(exc), started
            )
            if adopted:
                return recorded
            raise
        finally:
            self._in_step = False
        return self._record_value(step_id, opts.name, value, started)

    def go(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> futures.StepFuture:
        """Run ``fn`` as a step concurrently with the workflow; its step ID is taken now."""
        opts = registry.step_options(fn)
        step_id, row = self._take_step(opts.name)
        future = self._futures.new(step_id)
        if row is not None:
            try:
                future.resolve(self._replay(step_id, row), None)
            except Exception as exc:
                future.resolve(None, exc)
            return future
        threading.Thread(
            target=self._run_go,
            args=(future, opts, args, kwargs),
            name=f"waymark-go-{self.workflow_id}-{step_id}",
            daemon=True,
        ).start()
        return future

    def _run_go(
        self,
        future: futures.StepFuture,
        opts: registry.StepOptions,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        started = base.now_ms()
        try:
            try:
                value = attempt(self._engine, opts, args, kwargs)
            except Exception as exc:
                adopted, recorded = self._record(
                    future.step_id, opts.name, None, serialization.encode_error(exc), started
                )
                future.resolve(recorded, None) if adopted else future.resolve(None, exc)
                return
            future.resolve(self._record_value(future.step_id, opts.name, value, started), None)
        except BaseException as exc:  # a record failure or an interruption: the awaiter sees it
            future.resolve(None, exc)
        finally:
            self._engine._signals.fire(f"step:{self.workflow_id}")  # wakes a select()

    def select(self, step_futures: Sequence[futures.StepFuture]) -> Any:
        """The value of the first of ``step_futures`` to complete; the winner is recorded, so a
        replay returns the same one whatever the timing."""
        if not step_futures:
            raise ValueError("select() needs at least one future")
        step_id, row = self._take_step(SELECT)
        if row is not None:
            index = self._replay(step_id, row)["index"]
        else:
            started = base.now_ms()
            index = self._wait(None, (), lambda: self._futures.first_done(step_futures))
            self._record_value(step_id, SELECT, {"index": index}, started)
        return step_futures[index].result()

    # -- time ----------------------------------------------------------------------------------

    def sleep(self, duration: float | dt.timedelta) -> None:
        """Durable sleep: the wake-up time is recorded, so after a restart only the rest of it
        remains. A long sleep parks the workflow: no thread is held while it sleeps."""
        secs = seconds(duration, "sleep duration")
        step_id, row = self._take_step(SLEEP)
        if row is not None:
            wake_at = self._replay(step_id, row)
        else:
            started = base.now_ms()
            wake_at = self._record_value(step_id, SLEEP, started + int(secs * 1000), started)
        remaining = (wake_at - base.now_ms()) / 1000
        if remaining <= 0:
            return
        if remaining > PARK_AFTER_S and not self._futures.pending():
            raise Parked(wake_at)
        self._wait(wake_at, (), lambda: None)

    def _wait(self, until_ms: int | None, keys: Sequence[str], check: Callable[[], Any]) -> Any:
        """Until ``check()`` returns non-None (returned) or ``until_ms`` (None); interrupted
        by a cancel, a timeout or shutdown. The thread counts as blocked, not busy."""
        engine = self._engine
        engine._ensure_listener()
        keys = (f"stop:{self.workflow_id}", f"step:{self.workflow_id}", *keys)
        next_status_check = time.monotonic() + STATUS_RECHECK_S
        with engine._signals.watch(*keys) as woken, engine._pool.blocking():
            while True:
                self._check_running()
                found = check()
                if found is not None:
                    return found
                now = base.now_ms()
                if until_ms is not None and now >= until_ms:
                    return None
                wait = engine._poll_interval
                if until_ms is not None:
                    wait = min(wait, (until_ms - now) / 1000)
                woken.wait(wait)
                woken.clear()
                if time.monotonic() >= next_status_check:
                    next_status_check = time.monotonic() + STATUS_RECHECK_S
                    outcome = self._store.get_workflow_outcome(self.workflow_id)
                    if outcome is not None and outcome["executor_id"] != engine.executor_id:
                        raise Fenced(outcome["executor_id"])
                    if outcome is not None and outcome["status"] != Status.PENDING:
                        raise Interrupted(outcome["status"])

    # -- child workflows -------------------------------------------------------------------------

    def start_workflow(
        self,
        fn: Callable[..., Any] | str,
        input: Any = None,
        *,
        workflow_id: str | None = None,
        timeout: float | dt.timedelta | None = None,
        detached: bool = False,
        queue: Any = None,
    ) -> handle.WorkflowHandle:
        """Start a child workflow (ID ``f"{parent_id}-{step_id}"`` unless given), here or on
        ``queue``. It inherits this workflow's deadline unless ``detached``. Replays return
        the same child."""
        engine = self._engine
        queue_name = getattr(queue, "name", queue)
        if queue_name is not None and queue_name not in engine._queues:
            raise errors.EngineError(
                f"unknown queue {queue_name!r}; declare it with engine.queue()"
            )
        definition = engine._registry.resolve(fn)
        step_id, row = self._take_step(definition.name)
        if row is not None:
            return handle.WorkflowHandle(row["child_workflow_id"], engine)
        child_id = workflow_id if workflow_id is not None else f"{self.workflow_id}-{step_id}"
        inputs = serialization.encode_inputs(
            input, f"the input of workflow {definition.name!r}", engine.max_payload_bytes
        )
        now = base.now_ms()
        timeout_ms = int(seconds(timeout, "timeout") * 1000) if timeout is not None else None
        candidates = [
            now + timeout_ms if timeout_ms is not None else None,
            None if detached else self.deadline_ms,
        ]
        deadline = min((d for d in candidates if d is not None), default=None)
        if queue_name is None:
            child_row = self._store.workflow_row(
                workflow_id=child_id,
                status=Status.PENDING,
                name=definition.name,
                inputs=inputs,
                executor_id=engine.executor_id,
                application_version=engine.application_version,
                application_id=engine.app_name,
                started_at=now,
                parent_workflow_id=self.workflow_id,
                timeout_ms=timeout_ms,
                deadline_ms=deadline,
            )
        else:  # waits on the queue; its own timeout counts from its dequeue
            child_row = (
                "enqueue_workflow",
                {
                    "workflow_id": child_id,
                    "status": Status.ENQUEUED,
                    "name": definition.name,
                    "inputs": inputs,
                    "application_version": engine.application_version,
                    "application_id": engine.app_name,
                    "now": now,
                    "queue_name": queue_name,
                    "timeout_ms": timeout_ms,
                    "priority": 0,
                    "deduplication_id": None,
                    "delay_until": None,
                    "parent_workflow_id": self.workflow_id,
                    "deadline_ms": None if detached else self.deadline_ms,
                },
            )
        created_rows, step_rows = self._store.write_together(
            child_row,
            self._store.step_row(
                workflow_id=self.workflow_id,
                step_id=step_id,
                name=definition.name,
                output=None,
                error=None,
                started=now,
                child_workflow_id=child_id,
            ),
        )
        if created_rows and queue_name is not None:
            engine._signals.fire("enq")
        elif created_rows:
            engine._submit(
                definition, child_id, serialization.decode_inputs(inputs, "input"), None, deadline
            )
        else:
            existing = self._store.get_workflow(child_id)
            if existing is not None and existing["name"] != definition.name:
                raise errors.ConflictingWorkflowError(child_id, existing["name"], definition.name)
        outcome = self._store.step_outcome(step_rows, engine.executor_id)
        if outcome[0]:  # recorded: stop here if cancelled or taken from us
            self._after_record(step_id, outcome)
        return handle.WorkflowHandle(child_id, engine)

    def await_workflow(self, workflow_id: str, timeout: float | None) -> Any:
        """A handle's get_result inside a workflow: the outcome is recorded as a step, so a
        replay neither waits again nor can see a different outcome."""
        step_id, row = self._take_step(GET_RESULT)
        if row is not None:
            return self._replay(step_id, row)
        started = base.now_ms()
        until = started + int(timeout * 1000) if timeout is not None else None

        def final() -> Any:
            outcome = self._store.get_workflow_outcome(workflow_id)
            if outcome is None:
                raise errors.WorkflowNotFoundError(workflow_id)
            return outcome if outcome["status"] in FINAL_STATUSES else None

        outcome = self._wait(until, (f"done:{workflow_id}",), final)
        if outcome is None:
            raise TimeoutError(f"workflow {workflow_id!r} did not finish within {timeout} s")
        try:
            value = handle.outcome(workflow_id, outcome)
        except errors.EngineError as exc:
            adopted, recorded = self._record(
                step_id, GET_RESULT, None, serialization.encode_error(exc), started, workflow_id
            )
            if adopted:
                return recorded
            raise
        return self._record_value(step_id, GET_RESULT, value, started, workflow_id)

    # -- messages and events ---------------------------------------------------------------------

    def send(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        """Send a message to another workflow, exactly once (the send is a step)."""
        if topic is not None and not isinstance(topic, str):
            raise TypeError(f"topic must be a string or None, got {type(topic).__name__}")
        step_id, row = self._take_step(SEND)
        if row is not None:
            self._replay(step_id, row)
            return
        started = base.now_ms()
        text = serialization.dumps(
            message, f"the message to workflow {destination_id!r}", self._engine.max_payload_bytes
        )
        # The message ID is derived from this step, so a send repeated after a crash (before
        # its step was recorded) stores nothing twice.
        sent = self._store.send_message(
            destination_id, text, topic, f"{self.workflow_id}-{step_id}"
        )
        if not sent and self._store.get_workflow_outcome(destination_id) is None:
            exc = errors.WorkflowNotFoundError(destination_id)
            self._record(step_id, SEND, None, serialization.encode_error(exc), started)
            raise exc
        self._engine._signals.fire(f"msg:{destination_id}")
        self._record(step_id, SEND, "null", None, started)

    def recv(self, topic: str | None = None, timeout: float = 60.0) -> Any:
        """The oldest message sent to this workflow on ``topic`` (FIFO), waiting up to
        ``timeout`` seconds; None on timeout. The timeout is durable: a replay does not wait
        again, a recovery only waits for what remained."""
        until = self._durable_deadline(RECV_TIMEOUT, seconds(timeout, "timeout"))
        step_id, row = self._take_step(RECV)
        if row is not None:
            return self._replay(step_id, row)
        started = base.now_ms()

        def consume() -> tuple[Any] | None:
            message = self._store.oldest_message(self.workflow_id, topic)
            if message is None:
                return None
            step = self._store.step_row(
                workflow_id=self.workflow_id,
                step_id=step_id,
                name=RECV,
                output=message["message"],
                error=None,
                started=started,
            )
            outcome = self._store.consume_message(
                step, message["message_uuid"], self._engine.executor_id
            )
            adopted, recorded = self._after_record(step_id, outcome)
            if adopted:
                return (recorded,)
            return (serialization.loads(message["message"], "a received message"),)

        got = self._wait(until, (f"msg:{self.workflow_id}",), consume)
        if got is None:
            return self._record_value(step_id, RECV, None, started)
        return got[0]

    def _durable_deadline(self, name: str, secs: float) -> int:
        step_id, row = self._take_step(name)
        if row is not None:
            return int(self._replay(step_id, row))
        started = base.now_ms()
        return int(self._record_value(step_id, name, started + int(secs * 1000), started))

    def set_event(self, key: str, value: Any) -> None:
        """Publish ``value`` under ``key`` for ``get_event`` callers (last write wins)."""
        if not isinstance(key, str):
            raise TypeError(f"event key must be a string, got {type(key).__name__}")
        step_id, row = self._take_step(SET_EVENT)
        if row is not None:
            return
        started = base.now_ms()
        text = serialization.dumps(
            value, f"event {key!r} of workflow {self.workflow_id!r}", self._engine.max_payload_bytes
        )
        step = self._store.step_row(
            workflow_id=self.workflow_id,
            step_id=step_id,
            name=SET_EVENT,
            output="null",
            error=None,
            started=started,
        )
        outcome = self._store.set_event(step, key, text, self._engine.executor_id)
        self._engine._signals.fire(f"evt:{self.workflow_id}")
        self._after_record(step_id, outcome)

    def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        """``engine.get_event`` inside a workflow: recorded, with a durable timeout."""
        until = self._durable_deadline(GET_EVENT_TIMEOUT, seconds(timeout, "timeout"))
        step_id, row = self._take_step(GET_EVENT)
        if row is not None:
            return self._replay(step_id, row)
        started = base.now_ms()

        def check() -> tuple[Any] | None:
            found = self._store.get_event(workflow_id, key)
            if found is None:
                return None
            return (serialization.loads(found["value"], f"event {key!r}"),)

        got = self._wait(until, (f"evt:{workflow_id}",), check)
        return self._record_value(step_id, GET_EVENT, got[0] if got else None, started)


def attempt(
    engine: Engine, opts: registry.StepOptions, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Call a step function, retrying with backoff up to its ``max_attempts``."""
    tries = 1
    while True:
        try:
            return opts.fn(*args, **kwargs)
        except Exception:
            if tries >= opts.max_attempts:
                raise
            delay = opts.interval_seconds * opts.backoff_rate ** (tries - 1)
            if engine._stopping.wait(delay):
                raise Interrupted(None) from None
            tries += 1
