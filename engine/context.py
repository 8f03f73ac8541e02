"""WorkflowContext: what a workflow body sees, and the durable form of everything it does.

Every operation is checkpointed as a step (``checkpoints.py``); the engine's own operations
(sleep, messages, events, awaiting, select) under the reserved names of ``operations.py``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine import (
    attempts,
    clock,
    current,
    durable_writes,
    errors,
    futures,
    operations,
    patching,
    registry,
    results,
    serialization,
    streams,
    sync_steps,
    tracing,
    waits,
)
from engine import attributes as attrs
from engine import signals as keys
from engine.admission import Parent, seconds
from engine.checkpoints import Checkpoints, Fenced, Interrupted
from engine.handle import WorkflowHandle
from engine.records import FINAL_STATUSES, Status
from engine.runs import Run
from engine.services import STATUS_RECHECK_S, Services, check_topic
from engine.store import records

# A sleep longer than this parks the workflow (no thread held) instead of waiting in place.
PARK_AFTER_S = 2.0


def current_context() -> WorkflowContext | None:
    """The context of the workflow running on this thread, if any."""
    running = current.get()
    return running if isinstance(running, WorkflowContext) else None


class Parked(BaseException):
    """Unwinds a workflow body into a long durable sleep or wait; it is replayed at
    ``wake_at`` (None: no time limit), or as soon as one of ``keys`` fires or ``ready()``
    (a cheap check, no side effects) finds what the wait waits for."""

    def __init__(
        self,
        wake_at: int | None,
        keys: Sequence[str] = (),
        ready: Callable[[], bool] | None = None,
        poll: bool = True,
    ) -> None:
        super().__init__(wake_at)
        self.wake_at = wake_at
        self.keys = tuple(keys)
        self.ready = ready
        self.poll = poll  # False: every change it waits for is pushed (a signal or NOTIFY)


class WorkflowContext:
    def __init__(
        self,
        services: Services,
        run: Run,
        workflow_id: str,
        steps: Checkpoints,
        deadline_ms: int | None,
    ) -> None:
        self._services = services
        self._store = services.store
        self._run = run
        self.workflow_id = workflow_id
        self.deadline_ms = deadline_ms
        self._steps = steps  # the execution's too: it writes the end (Checkpoints.write_end)
        self._in_step = False
        self._futures = futures.FutureSet()
        self._attempts = attempts.Recorder(services.store, workflow_id)

    @property
    def fatal(self) -> errors.NonDeterministicWorkflowError | None:
        """A determinism violation: the workflow ends in ERROR even if its body caught it."""
        return self._steps.fatal

    def __enter__(self) -> WorkflowContext:
        self._token = current.enter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        current.leave(self._token)

    def records_for(self, source: object) -> bool:
        """Whether a call through ``source`` (an engine's results or the engine itself) is
        this workflow's to record: the same engine, and not from inside a step."""
        return not self._in_step and source is self._services.results

    def _take(self, name: str) -> tuple[int, records.StepRow | None]:
        self._steps.flush()  # first: a step that finished keeps its checkpoint even on a stop
        self._check_running()
        return self._steps.take(name)

    def _check_running(self) -> None:
        if self._services.stopping.is_set():
            raise Interrupted(None)
        if self._run.stopped is not None:
            raise Interrupted(self._run.stopped)

    # -- steps -------------------------------------------------------------------------------

    def run_step(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as a checkpointed step (replayed from its record)."""
        opts = registry.step_options(fn)
        if self._in_step:  # a step called from inside a step is part of the outer one
            return opts.fn(*args, **kwargs)
        step_id, row = self._take(opts.name)
        if row is not None:
            return self._steps.replay(step_id, row)
        started = clock.now_ms()
        self._in_step = True
        metrics = self._store.metrics
        traced = (self.workflow_id, step_id, None) if tracing.enabled() else None
        try:
            value = sync_steps.attempt(
                self._services.stopping,
                opts,
                args,
                kwargs,
                self._attempts.for_step(step_id),
                metrics,
                traced,
            )
        except Exception as exc:
            metrics.step(opts.name, "error", (clock.now_ms() - started) / 1000)
            self._steps.record_error(step_id, opts.name, exc, started, defer=True)
            raise
        finally:
            self._in_step = False
        metrics.step(opts.name, "success", (clock.now_ms() - started) / 1000)
        return self._steps.record_value(step_id, opts.name, value, started, defer=True)

    def go(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> futures.StepFuture:
        """Run ``fn`` as a step concurrently with the workflow; its step ID is taken now."""
        opts = registry.step_options(fn)
        step_id, row = self._take(opts.name)
        future = self._futures.new(step_id)
        if row is not None:
            try:
                future.resolve(self._steps.replay(step_id, row), None)
            except Exception as exc:
                future.resolve(None, exc)
            return future
        traced = (self.workflow_id, step_id, tracing.capture()) if tracing.enabled() else None
        threading.Thread(
            target=self._run_go,
            args=(future, opts, args, kwargs, traced),
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
        traced: sync_steps.Traced | None = None,
    ) -> None:
        started = clock.now_ms()
        step_id = future.step_id
        metrics = self._store.metrics
        try:
            try:
                value = sync_steps.attempt(
                    self._services.stopping,
                    opts,
                    args,
                    kwargs,
                    self._attempts.for_step(step_id),
                    metrics,
                    traced,
                )
            except Exception as exc:
                metrics.step(opts.name, "error", (clock.now_ms() - started) / 1000)
                adopted, recorded = self._steps.record_error(step_id, opts.name, exc, started)
                future.resolve(recorded, None) if adopted else future.resolve(None, exc)
                return
            metrics.step(opts.name, "success", (clock.now_ms() - started) / 1000)
            future.resolve(self._steps.record_value(step_id, opts.name, value, started), None)
        except BaseException as exc:  # a record failure or an interruption: the awaiter sees it
            future.resolve(None, exc)
        finally:
            self._services.wakeups.fire(keys.step_key(self.workflow_id))  # wakes a select()

    def select(self, step_futures: Sequence[futures.StepFuture]) -> Any:
        """The value of the first of ``step_futures`` to complete; the winner is recorded, so a
        replay returns the same one whatever the timing."""
        if not step_futures:
            raise ValueError("select() needs at least one future")
        step_id, row = self._take(operations.SELECT)
        if row is not None:
            index = operations.select_index(self._steps.replay(step_id, row))
        else:
            started = clock.now_ms()
            waiting = waits.new(waits.STEP, step_id)
            index = self._wait(None, (), lambda: self._futures.first_done(step_futures), waiting)
            output = operations.select_output(index)
            self._steps.record_value(step_id, operations.SELECT, output, started)
        return step_futures[index].result()

    # -- evolving code ---------------------------------------------------------------------------

    def patch(self, name: str) -> bool:
        """True where this workflow runs the code that has patch ``name`` (recorded once as a
        step), False for a workflow that passed this point under the older code (see
        ``patching.py``)."""
        self._check_running()
        return patching.patch(self._steps, name)

    def deprecate_patch(self, name: str) -> bool:
        """Always True: the patch's old branch is gone; a recorded marker is replayed, nothing
        new is recorded."""
        self._check_running()
        return patching.deprecate_patch(self._steps, name)

    # -- time ----------------------------------------------------------------------------------

    def sleep(self, duration: float | dt.timedelta) -> None:
        """Durable sleep: the wake-up time is recorded, so after a restart only the rest of it
        remains. A long sleep parks the workflow: no thread is held while it sleeps."""
        secs = seconds(duration, "sleep duration")
        step_id, row = self._take(operations.SLEEP)
        if row is not None:
            wake_at = self._steps.replay(step_id, row)
        else:
            started = clock.now_ms()
            wake_at = started + int(secs * 1000)
            wake_at = self._steps.record_value(step_id, operations.SLEEP, wake_at, started)
        remaining = (wake_at - clock.now_ms()) / 1000
        if remaining <= 0:
            return
        # The wait ends when the step after the sleep is recorded (or at wake_at).
        waiting = waits.new(waits.SLEEP, step_id + 1, until_ms=wake_at)
        if remaining > PARK_AFTER_S and not self._futures.pending():
            self._record_wait(waiting)
            raise Parked(wake_at)
        self._wait(wake_at, (), lambda: None, waiting)

    def _wait_or_park(
        self,
        until_ms: int | None,
        watched: Sequence[str],
        check: Callable[[], Any],
        ready: Callable[[], bool],
        pushed: bool = False,
        waiting: waits.Wait | None = None,
    ) -> Any:
        """``_wait``, except that a wait with nothing there yet and more than PARK_AFTER_S
        to go parks the workflow: no thread is held until ``watched`` fires, ``ready()``
        holds (the runtime polls it for other processes' changes unless ``pushed``: the store
        delivers them by NOTIFY) or ``until_ms`` passes;
        then the body is replayed from its checkpoints to this wait, which finds its value."""
        parkable = not self._futures.pending() and (
            until_ms is None or until_ms - clock.now_ms() > PARK_AFTER_S * 1000
        )
        if parkable:
            self._check_running()
            found = check()
            if found is not None:
                return found
            if waiting is not None:
                self._record_wait(waiting)  # parked: what it waits on, for the console
            watching = (keys.stop_key(self.workflow_id), *watched)
            raise Parked(until_ms, watching, ready, poll=not pushed)
        return self._wait(until_ms, watched, check, waiting)

    def _wait(
        self,
        until_ms: int | None,
        watched: Sequence[str],
        check: Callable[[], Any],
        waiting: waits.Wait | None = None,
    ) -> Any:
        """Until ``check()`` returns non-None (returned) or ``until_ms`` (None); interrupted
        by a cancel, a timeout or shutdown. The thread counts as blocked, not busy.
        ``waiting``: what to record as the workflow's wait if it has to wait at all."""
        services = self._services
        wakeups = services.wakeups
        wakeups.listen()
        watched = (keys.stop_key(self.workflow_id), keys.step_key(self.workflow_id), *watched)
        next_status_check = time.monotonic() + STATUS_RECHECK_S
        recorded = False
        with wakeups.watch(*watched) as woken, services.blocking():
            while True:
                self._check_running()
                found = check()
                now = clock.now_ms()
                over = found is not None or (until_ms is not None and now >= until_ms)
                if over:
                    if recorded:  # the wait is over: one write, only after a real wait
                        self._record_wait(None)
                    return found
                if waiting is not None and not recorded:
                    self._record_wait(waiting)
                    recorded = True
                wait = wakeups.poll_interval
                if until_ms is not None:
                    wait = min(wait, (until_ms - now) / 1000)
                woken.wait(wait)
                woken.clear()
                if time.monotonic() >= next_status_check:
                    next_status_check = time.monotonic() + STATUS_RECHECK_S
                    outcome = self._store.get_workflow_outcome(self.workflow_id)
                    if outcome is not None and outcome.executor_id != services.executor_id:
                        raise Fenced(outcome.executor_id)
                    if outcome is not None and outcome.status != Status.PENDING:
                        raise Interrupted(outcome.status)

    def _record_wait(self, waiting: waits.Wait | None) -> None:
        text = waiting.encode() if waiting is not None else None
        self._store.attempts.set_waiting(self.workflow_id, self._services.executor_id, text)

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
        attributes: dict[str, Any] | None = None,
    ) -> WorkflowHandle:
        """Start a child workflow (ID ``f"{parent_id}-{step_id}"`` unless given), here or on
        ``queue``. It inherits this workflow's deadline unless ``detached``. Replays return
        the same child."""
        services = self._services
        services.admission.queue_of(queue)  # an unknown queue takes no step ID
        definition = services.registry.resolve(fn)
        step_id, row = self._take(definition.name)
        if row is not None:
            return WorkflowHandle(row.child_workflow_id or "", services.results)
        parent = Parent(self.workflow_id, step_id, self.deadline_ms, services.executor_id)
        admitted, outcome = services.admission.child(
            parent,
            definition.name,
            input,
            workflow_id=workflow_id,
            timeout=timeout,
            detached=detached,
            queue=queue,
            attributes=attributes,
        )
        if admitted.run_here is not None:
            services.run_here(admitted.run_here)
        if outcome.recorded:  # recorded: stop here if cancelled or taken from us
            self._steps.after_record(step_id, outcome)
        return WorkflowHandle(admitted.workflow_id, services.results)

    def await_workflow(self, workflow_id: str, timeout: float | None) -> Any:
        """A handle's get_result inside a workflow: the outcome is recorded as a step, so a
        replay neither waits again nor can see a different outcome."""
        step_id, row = self._take(operations.GET_RESULT)
        if row is not None:
            return self._steps.replay(step_id, row)
        started = clock.now_ms()
        until = started + int(timeout * 1000) if timeout is not None else None

        def final() -> records.Outcome | None:
            outcome = self._store.get_workflow_outcome(workflow_id)
            if outcome is None:
                raise errors.WorkflowNotFoundError(workflow_id)
            return outcome if outcome.status in FINAL_STATUSES else None

        waiting = waits.new(waits.CHILD, step_id, until_ms=until, workflow_id=workflow_id)

        def ended() -> bool:
            outcome = self._store.get_workflow_outcome(workflow_id)
            return outcome is None or outcome.status in FINAL_STATUSES

        outcome = self._wait_or_park(
            until, (keys.done_key(workflow_id),), final, ended, waiting=waiting
        )
        if outcome is None:
            raise TimeoutError(f"workflow {workflow_id!r} did not finish within {timeout} s")
        name = operations.GET_RESULT
        try:
            value = results.value_of(workflow_id, outcome)
        except errors.EngineError as exc:
            adopted, recorded = self._steps.record_error(step_id, name, exc, started, workflow_id)
            if adopted:
                return recorded
            raise
        return self._steps.record_value(step_id, name, value, started, workflow_id)

    def await_workflow_async(self, workflow_id: str, timeout: float | None) -> Any:
        raise errors.EngineError(
            f"workflow {self.workflow_id!r} is not async: use handle.get_result(), or make "
            "the workflow 'async def' to await handle.get_result_async()"
        )

    # -- messages and events ---------------------------------------------------------------------

    def send(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        """Send a message to another workflow, exactly once (the send is a step)."""
        check_topic(topic)
        step_id, row = self._take(operations.SEND)
        if row is not None:
            self._steps.replay(step_id, row)
            return
        started = clock.now_ms()
        text = serialization.dumps(
            message,
            f"the message to workflow {destination_id!r}",
            self._services.max_payload_bytes,
        )
        # The message ID is derived from this step, so a send repeated after a crash (before
        # its step was recorded) stores nothing twice.
        sent = self._store.messages.send_message(
            destination_id, text, topic, f"{self.workflow_id}-{step_id}"
        )
        if not sent and self._store.get_workflow_outcome(destination_id) is None:
            exc = errors.WorkflowNotFoundError(destination_id)
            self._steps.record_error(step_id, operations.SEND, exc, started)
            raise exc
        self._services.wakeups.fire(keys.message_key(destination_id))
        self._steps.record(step_id, operations.SEND, "null", None, started)

    def recv(self, topic: str | None = None, timeout: float = 60.0) -> Any:
        """The oldest message sent to this workflow on ``topic`` (FIFO), waiting up to
        ``timeout`` seconds; None on timeout. The timeout is durable: a replay does not wait
        again, a recovery only waits for what remained."""
        until = self._durable_deadline(operations.RECV_TIMEOUT, seconds(timeout, "timeout"))
        step_id, row = self._take(operations.RECV)
        if row is not None:
            return self._steps.replay(step_id, row)
        started = clock.now_ms()

        def consume() -> tuple[Any] | None:
            message = self._store.messages.oldest_message(self.workflow_id, topic)
            if message is None:
                return None
            step = records.NewStep(
                self.workflow_id, step_id, operations.RECV, message.message, None, started
            )
            executor_id = self._services.executor_id
            outcome = self._store.messages.consume_message(step, message.message_id, executor_id)
            adopted, recorded = self._steps.after_record(step_id, outcome)
            if adopted:
                return (recorded,)
            return (serialization.loads(message.message, "a received message"),)

        waiting = waits.new(waits.MESSAGE, step_id, until_ms=until, topic=topic)

        def arrived() -> bool:
            return self._store.messages.oldest_message(self.workflow_id, topic) is not None

        got = self._wait_or_park(
            until,
            (keys.message_key(self.workflow_id),),
            consume,
            arrived,
            pushed=self._store.pushes_changes,
            waiting=waiting,
        )
        if got is None:
            return self._steps.record_value(step_id, operations.RECV, None, started)
        return got[0]

    def _durable_deadline(self, name: str, secs: float) -> int:
        step_id, row = self._take(name)
        if row is not None:
            return int(self._steps.replay(step_id, row))
        started = clock.now_ms()
        return int(self._steps.record_value(step_id, name, started + int(secs * 1000), started))

    def set_event(self, key: str, value: Any) -> None:
        """Publish ``value`` under ``key`` for ``get_event`` callers (last write wins)."""
        if not isinstance(key, str):
            raise TypeError(f"event key must be a string, got {type(key).__name__}")
        step_id, row = self._take(operations.SET_EVENT)
        if row is not None:
            return
        started = clock.now_ms()
        text = serialization.dumps(
            value,
            f"event {key!r} of workflow {self.workflow_id!r}",
            self._services.max_payload_bytes,
        )
        step = records.NewStep(
            self.workflow_id, step_id, operations.SET_EVENT, "null", None, started
        )
        outcome = self._store.messages.set_event(step, key, text, self._services.executor_id)
        self._services.wakeups.fire(keys.event_key(self.workflow_id))
        self._steps.after_record(step_id, outcome)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        """Merge ``attributes`` into this workflow's (durably, once, as a step): keys are
        strings, values JSON scalars; a bad mapping raises before anything is recorded."""
        attrs.check(attributes)  # a mapping, even an empty one; before a step ID is taken
        text = attrs.encode(attributes)
        step_id, row = self._take(operations.SET_ATTRIBUTES)
        if row is not None:
            self._steps.replay(step_id, row)
            return
        services = self._services
        durable_writes.set_attributes(
            self._store, self._steps, services.executor_id, self.workflow_id, step_id, text
        )

    def write_stream(self, key: str, value: Any) -> None:
        """Append ``value`` to this workflow's stream ``key`` (exactly once, as a step)."""
        self._stream(key, value, closed=False)

    def close_stream(self, key: str) -> None:
        """End stream ``key``: readers stop after its last value."""
        self._stream(key, None, closed=True)

    def _stream(self, key: str, value: Any, *, closed: bool) -> None:
        streams.check_key(key)
        name = operations.CLOSE_STREAM if closed else operations.WRITE_STREAM
        text = None
        if not closed:  # checked before a step ID is taken: a bad value records nothing
            text = serialization.dumps(
                value,
                f"a value of stream {key!r} of workflow {self.workflow_id!r}",
                self._services.max_payload_bytes,
            )
        step_id, row = self._take(name)
        if row is not None:
            self._steps.replay(step_id, row)
            return
        services = self._services
        durable_writes.write_stream(
            self._store, services.wakeups, self._steps, services.executor_id,
            self.workflow_id, step_id, key, text, closed,
        )  # fmt: skip

    def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        """``engine.get_event`` inside a workflow: recorded, with a durable timeout."""
        until = self._durable_deadline(operations.GET_EVENT_TIMEOUT, seconds(timeout, "timeout"))
        step_id, row = self._take(operations.GET_EVENT)
        if row is not None:
            return self._steps.replay(step_id, row)
        started = clock.now_ms()

        def check() -> tuple[Any] | None:
            found = self._store.messages.get_event(workflow_id, key)
            if found is None:
                return None
            return (serialization.loads(found, f"event {key!r}"),)

        waiting = waits.new(waits.EVENT, step_id, until_ms=until, key=key, workflow_id=workflow_id)

        def published() -> bool:
            return self._store.messages.get_event(workflow_id, key) is not None

        got = self._wait_or_park(
            until,
            (keys.event_key(workflow_id),),
            check,
            published,
            pushed=self._store.pushes_changes,
            waiting=waiting,
        )
        value = got[0] if got else None
        return self._steps.record_value(step_id, operations.GET_EVENT, value, started)
