"""AsyncWorkflowContext: what an ``async def`` workflow sees.

The same checkpoints as a sync workflow (``checkpoints.py``), taken on the workflow's event
loop: a step ID is taken when the operation is *called* (not when it is awaited), so
``asyncio.gather(a(), b())`` reaches the same IDs on replay. Database calls run on the
engine's I/O threads (``loop.Offload``) and are awaited; waits register an asyncio wake-up
with the same in-process signals (and LISTEN/NOTIFY, polling) as sync waits, so a waiting
async workflow holds no thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NoReturn

from engine import (
    async_steps,
    async_waits,
    attempts,
    clock,
    current,
    durable_writes,
    errors,
    operations,
    patching,
    registry,
    results,
    serialization,
    streams,
    tracing,
)
from engine import attributes as attrs
from engine import signals as keys
from engine.admission import Parent, seconds
from engine.checkpoints import Checkpoints, Interrupted
from engine.handle import WorkflowHandle
from engine.loop import Offload
from engine.records import FINAL_STATUSES
from engine.runs import Run
from engine.services import STATUS_RECHECK_S, Services, check_topic
from engine.store import records

_in_step = async_steps.in_step  # set inside an async step's body: durable calls are plain there


def current_async() -> AsyncWorkflowContext | None:
    """The async workflow running in this task, if any."""
    running = current.get()
    return running if isinstance(running, AsyncWorkflowContext) else None


class AsyncWorkflowContext:
    def __init__(
        self,
        services: Services,
        offload: Offload,
        run: Run,
        workflow_id: str,
        recorded: dict[int, records.StepRow] | None,
        deadline_ms: int | None,
    ) -> None:
        self._services = services
        self._store = services.store
        self._io = offload.call
        self._run = run
        self.workflow_id = workflow_id
        self.deadline_ms = deadline_ms
        # Made on the loop's thread: every step ID is taken there, in call order.
        self._steps = Checkpoints(
            services.store, services.executor_id, workflow_id, recorded, services.max_payload_bytes
        )
        self._attempts = attempts.Recorder(services.store, workflow_id)
        self._waiter = async_waits.Waiter(services, offload, workflow_id, self._check_running)

    @property
    def fatal(self) -> errors.NonDeterministicWorkflowError | None:
        return self._steps.fatal

    def records_for(self, source: object) -> bool:
        return not _in_step.get() and source is self._services.results

    def in_step(self) -> bool:
        return _in_step.get()

    def _take(self, name: str) -> tuple[int, records.StepRow | None]:
        if self._services.stopping.is_set():
            raise Interrupted(None)
        if self._run.stopped is not None:
            raise Interrupted(self._run.stopped)
        return self._steps.take(name)

    def _check_running(self) -> None:
        if self._services.stopping.is_set():
            raise Interrupted(None)
        if self._run.stopped is not None:
            raise Interrupted(self._run.stopped)

    # -- checkpoints, awaited on the loop through the group commit ---------------------------

    async def _record(
        self,
        step_id: int,
        name: str,
        output: str | None,
        error: str | None,
        started: int,
        child_workflow_id: str | None = None,
    ) -> tuple[bool, Any]:
        step = records.NewStep(
            self.workflow_id, step_id, name, output, error, started, child_workflow_id
        )
        outcome = await self._store.record_step_async(step, self._services.executor_id)
        if not outcome.recorded:  # a conflict (rare): adopting reads the record, on a thread
            return await self._io(self._steps.after_record, step_id, outcome)
        return self._steps.after_record(step_id, outcome)

    async def _record_value(
        self,
        step_id: int,
        name: str,
        value: Any,
        started: int,
        child_workflow_id: str | None = None,
    ) -> Any:
        what = f"the result of {name} (step {step_id} of workflow {self.workflow_id!r})"
        output = serialization.dumps(value, what, self._services.max_payload_bytes)
        adopted, recorded = await self._record(
            step_id, name, output, None, started, child_workflow_id
        )
        return recorded if adopted else serialization.loads(output, what)

    async def _record_error(
        self,
        step_id: int,
        name: str,
        exc: BaseException,
        started: int,
        child_workflow_id: str | None = None,
    ) -> tuple[bool, Any]:
        error = serialization.encode_error(exc)
        return await self._record(step_id, name, None, error, started, child_workflow_id)

    # -- blocking calls are refused: they would stall every workflow on the loop -------------

    def _blocking(self, name: str) -> NoReturn:
        raise errors.EngineError(
            f"workflow {self.workflow_id!r} is async: ctx.{name}() would block its event loop; "
            f"use 'await ctx.{name}_async(...)' instead"
        )

    def run_step(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("run_step")

    def sleep(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("sleep")

    def recv(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("recv")

    def send(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("send")

    def set_event(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("set_event")

    def get_event(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("get_event")

    def start_workflow(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("start_workflow")

    def select(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("select")

    def set_attributes(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("set_attributes")

    def write_stream(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("write_stream")

    def close_stream(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._blocking("close_stream")

    def go(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise errors.EngineError(
            f"workflow {self.workflow_id!r} is async: instead of ctx.go(), call the step "
            "(or ctx.run_step_async) and gather the awaitables"
        )

    def await_workflow(self, workflow_id: str, timeout: float | None) -> NoReturn:
        raise errors.EngineError(
            f"workflow {self.workflow_id!r} is async: handle.get_result() would block its "
            "event loop; use 'await handle.get_result_async()' instead"
        )

    # -- steps -------------------------------------------------------------------------------

    def run_step_async(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Run ``fn`` as a checkpointed step (async on the loop, sync in a thread); the step
        ID is taken now, at the call."""
        opts = registry.step_options(fn)
        if _in_step.get():
            return async_steps.attempt(opts, args, kwargs, self._pause, once=True)
        step_id, row = self._take(opts.name)
        return self._run_step(step_id, row, opts, args, kwargs)

    async def _run_step(
        self,
        step_id: int,
        row: records.StepRow | None,
        opts: registry.StepOptions,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if row is not None:
            return self._steps.replay(step_id, row)
        started = clock.now_ms()
        metrics = self._store.metrics
        record_failure = self._attempts.for_step(step_id)

        async def failed(exc: BaseException, began: int) -> None:
            await self._io(record_failure, exc, began)

        try:
            value = await async_steps.attempt(
                opts,
                args,
                kwargs,
                self._pause,
                failed=failed,
                metrics=metrics,
                traced=(self.workflow_id, step_id) if tracing.enabled() else None,
            )
        except Exception as exc:
            metrics.step(opts.name, "error", (clock.now_ms() - started) / 1000)
            adopted, recorded = await self._record_error(step_id, opts.name, exc, started)
            if adopted:
                return recorded
            raise
        metrics.step(opts.name, "success", (clock.now_ms() - started) / 1000)
        return await self._record_value(step_id, opts.name, value, started)

    async def _pause(self, delay: float) -> None:
        """A retry's backoff; shutdown interrupts it."""
        until = time.monotonic() + delay
        while (left := until - time.monotonic()) > 0:
            self._check_running()
            await asyncio.sleep(min(left, STATUS_RECHECK_S))
        self._check_running()

    def select_async(self, awaitables: Sequence[Awaitable[Any]]) -> Awaitable[Any]:
        """The value of the first awaitable to complete; the winner is recorded, so a replay
        returns the same one. The others keep running."""
        items = list(awaitables)
        if not items:
            raise ValueError("select_async() needs at least one awaitable")
        step_id, row = self._take(operations.SELECT)
        tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(a) for a in items]
        return self._select(step_id, row, tasks)

    async def _select(
        self, step_id: int, row: records.StepRow | None, tasks: list[asyncio.Future[Any]]
    ) -> Any:
        if row is not None:
            index = operations.select_index(self._steps.replay(step_id, row))
            return await tasks[index]
        started = clock.now_ms()
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        index = min(i for i, task in enumerate(tasks) if task in done)
        output = operations.select_output(index)
        await self._record_value(step_id, operations.SELECT, output, started)
        return await tasks[index]

    # -- evolving code ---------------------------------------------------------------------------

    def patch(self, name: str) -> bool:
        """``WorkflowContext.patch``, called directly (not awaited). Recording the marker is
        one write, once per workflow, made here on the loop: the decision must be durable
        before any later step of this workflow is, and the loop's order is what guarantees it."""
        self._check_running()
        return patching.patch(self._steps, name)

    def deprecate_patch(self, name: str) -> bool:
        """``WorkflowContext.deprecate_patch``: records nothing, so nothing waits."""
        self._check_running()
        return patching.deprecate_patch(self._steps, name)

    # -- attributes and streams ------------------------------------------------------------------

    def set_attributes_async(self, attributes: dict[str, Any]) -> Awaitable[None]:
        """Merge ``attributes`` into this workflow's (durably, once, as a step); a bad mapping
        raises here, before a step ID is taken."""
        attrs.check(attributes)
        text = attrs.encode(attributes)
        step_id, row = self._take(operations.SET_ATTRIBUTES)
        write = functools.partial(
            durable_writes.set_attributes, self._store, self._steps,
            self._services.executor_id, self.workflow_id, step_id, text,
        )  # fmt: skip
        return self._write(step_id, row, write)

    def write_stream_async(self, key: str, value: Any) -> Awaitable[None]:
        """Append ``value`` to this workflow's stream ``key`` (exactly once, as a step)."""
        return self._stream(key, value, closed=False)

    def close_stream_async(self, key: str) -> Awaitable[None]:
        """End stream ``key``: readers stop after its last value."""
        return self._stream(key, None, closed=True)

    def _stream(self, key: str, value: Any, *, closed: bool) -> Awaitable[None]:
        streams.check_key(key)
        text = None
        if not closed:  # checked before a step ID is taken: a bad value records nothing
            what = f"a value of stream {key!r} of workflow {self.workflow_id!r}"
            text = serialization.dumps(value, what, self._services.max_payload_bytes)
        step_id, row = self._take(operations.CLOSE_STREAM if closed else operations.WRITE_STREAM)
        services = self._services
        write = functools.partial(
            durable_writes.write_stream, self._store, services.wakeups, self._steps,
            services.executor_id, self.workflow_id, step_id, key, text, closed,
        )  # fmt: skip
        return self._write(step_id, row, write)

    async def _write(
        self, step_id: int, row: records.StepRow | None, write: Callable[[], None]
    ) -> None:
        if row is not None:
            self._steps.replay(step_id, row)
            return
        await self._io(write)

    # -- waiting -------------------------------------------------------------------------------

    def sleep_async(self, duration: float | dt.timedelta) -> Awaitable[None]:
        """Durable sleep: the wake-up time is recorded; after a restart only the rest remains."""
        secs = seconds(duration, "sleep duration")
        step_id, row = self._take(operations.SLEEP)
        return self._sleep(step_id, row, secs)

    async def _sleep(self, step_id: int, row: records.StepRow | None, secs: float) -> None:
        if row is not None:
            wake_at = self._steps.replay(step_id, row)
        else:
            started = clock.now_ms()
            wake_at_ms = started + int(secs * 1000)
            wake_at = await self._record_value(step_id, operations.SLEEP, wake_at_ms, started)
        if wake_at > clock.now_ms():
            await self._waiter.wait(int(wake_at), (), None)

    def _durable_deadline(self, name: str, secs: float) -> tuple[int, records.StepRow | None, int]:
        step_id, row = self._take(name)
        return step_id, row, int(secs * 1000)

    async def _deadline(self, taken: tuple[int, records.StepRow | None, int], name: str) -> int:
        step_id, row, ms = taken
        if row is not None:
            return int(self._steps.replay(step_id, row))
        started = clock.now_ms()
        return int(await self._record_value(step_id, name, started + ms, started))

    # -- messages and events ---------------------------------------------------------------------

    def send_async(
        self, destination_id: str, message: Any, topic: str | None = None
    ) -> Awaitable[None]:
        """Send a message to another workflow, exactly once (the send is a step)."""
        check_topic(topic)
        step_id, row = self._take(operations.SEND)
        return self._send(step_id, row, destination_id, message, topic)

    async def _send(
        self,
        step_id: int,
        row: records.StepRow | None,
        destination_id: str,
        message: Any,
        topic: str | None,
    ) -> None:
        if row is not None:
            self._steps.replay(step_id, row)
            return
        await self._io(self._send_now, step_id, destination_id, message, topic)

    def _send_now(self, step_id: int, destination_id: str, message: Any, topic: str | None) -> None:
        started = clock.now_ms()
        text = serialization.dumps(
            message,
            f"the message to workflow {destination_id!r}",
            self._services.max_payload_bytes,
        )
        sent = self._store.messages.send_message(
            destination_id, text, topic, f"{self.workflow_id}-{step_id}"
        )
        if not sent and self._store.get_workflow_outcome(destination_id) is None:
            exc = errors.WorkflowNotFoundError(destination_id)
            self._steps.record_error(step_id, operations.SEND, exc, started)
            raise exc
        self._services.wakeups.fire(keys.message_key(destination_id))
        self._steps.record(step_id, operations.SEND, "null", None, started)

    def recv_async(self, topic: str | None = None, timeout: float = 60.0) -> Awaitable[Any]:
        """The oldest message on ``topic`` (FIFO), waiting up to ``timeout`` seconds (durable);
        None on timeout."""
        taken = self._durable_deadline(operations.RECV_TIMEOUT, seconds(timeout, "timeout"))
        step_id, row = self._take(operations.RECV)
        return self._recv(taken, step_id, row, topic)

    async def _recv(
        self,
        taken: tuple[int, records.StepRow | None, int],
        step_id: int,
        row: records.StepRow | None,
        topic: str | None,
    ) -> Any:
        until = await self._deadline(taken, operations.RECV_TIMEOUT)
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
            outcome = self._store.messages.consume_message(
                step, message.message_id, self._services.executor_id
            )
            adopted, recorded = self._steps.after_record(step_id, outcome)
            if adopted:
                return (recorded,)
            return (serialization.loads(message.message, "a received message"),)

        got = await self._waiter.wait(until, (keys.message_key(self.workflow_id),), consume)
        if got is None:
            return await self._record_value(step_id, operations.RECV, None, started)
        return got[0]

    def set_event_async(self, key: str, value: Any) -> Awaitable[None]:
        """Publish ``value`` under ``key`` for ``get_event`` callers (last write wins)."""
        if not isinstance(key, str):
            raise TypeError(f"event key must be a string, got {type(key).__name__}")
        step_id, row = self._take(operations.SET_EVENT)
        return self._set_event(step_id, row, key, value)

    async def _set_event(
        self, step_id: int, row: records.StepRow | None, key: str, value: Any
    ) -> None:
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
        outcome = await self._io(
            self._store.messages.set_event, step, key, text, self._services.executor_id
        )
        self._services.wakeups.fire(keys.event_key(self.workflow_id))
        self._steps.after_record(step_id, outcome)

    def get_event_async(self, workflow_id: str, key: str, timeout: float = 60.0) -> Awaitable[Any]:
        """``engine.get_event_async`` inside a workflow: recorded, with a durable timeout."""
        taken = self._durable_deadline(operations.GET_EVENT_TIMEOUT, seconds(timeout, "timeout"))
        step_id, row = self._take(operations.GET_EVENT)
        return self._get_event(taken, step_id, row, workflow_id, key)

    async def _get_event(
        self,
        taken: tuple[int, records.StepRow | None, int],
        step_id: int,
        row: records.StepRow | None,
        workflow_id: str,
        key: str,
    ) -> Any:
        until = await self._deadline(taken, operations.GET_EVENT_TIMEOUT)
        if row is not None:
            return self._steps.replay(step_id, row)
        started = clock.now_ms()

        def check() -> tuple[Any] | None:
            found = self._store.messages.get_event(workflow_id, key)
            return None if found is None else (serialization.loads(found, f"event {key!r}"),)

        got = await self._waiter.wait(until, (keys.event_key(workflow_id),), check)
        value = got[0] if got else None
        return await self._record_value(step_id, operations.GET_EVENT, value, started)

    # -- child workflows -------------------------------------------------------------------------

    def start_workflow_async(
        self,
        fn: Callable[..., Any] | str,
        input: Any = None,
        *,
        workflow_id: str | None = None,
        timeout: float | dt.timedelta | None = None,
        detached: bool = False,
        queue: Any = None,
        attributes: dict[str, Any] | None = None,
    ) -> Coroutine[Any, Any, WorkflowHandle]:
        """Start a child workflow (ID ``f"{parent_id}-{step_id}"`` unless given); an async
        child runs on this loop, a sync one on a workflow thread."""
        services = self._services
        services.admission.queue_of(queue)  # an unknown queue takes no step ID
        definition = services.registry.resolve(fn)
        step_id, row = self._take(definition.name)
        options = {
            "workflow_id": workflow_id,
            "timeout": timeout,
            "detached": detached,
            "attributes": attributes,
        }
        return self._start_child(step_id, row, definition.name, input, queue, options)

    async def _start_child(
        self,
        step_id: int,
        row: records.StepRow | None,
        name: str,
        input: Any,
        queue: Any,
        options: dict[str, Any],
    ) -> WorkflowHandle:
        services = self._services
        if row is not None:
            return WorkflowHandle(row.child_workflow_id or "", services.results)
        parent = Parent(self.workflow_id, step_id, self.deadline_ms, services.executor_id)
        child = functools.partial(services.admission.child, queue=queue, **options)
        admitted, outcome = await self._io(child, parent, name, input)
        if admitted.run_here is not None:
            services.run_here(admitted.run_here)  # on this loop when the child is async
        if outcome.recorded:
            self._steps.after_record(step_id, outcome)
        return WorkflowHandle(admitted.workflow_id, services.results)

    def await_workflow_async(self, workflow_id: str, timeout: float | None) -> Awaitable[Any]:
        """``await handle.get_result_async()`` here: a durable, recorded wait."""
        step_id, row = self._take(operations.GET_RESULT)
        return self._await_workflow(step_id, row, workflow_id, timeout)

    async def _await_workflow(
        self, step_id: int, row: records.StepRow | None, workflow_id: str, timeout: float | None
    ) -> Any:
        if row is not None:
            return self._steps.replay(step_id, row)
        started = clock.now_ms()
        until = started + int(timeout * 1000) if timeout is not None else None

        def final() -> records.Outcome | None:
            outcome = self._store.get_workflow_outcome(workflow_id)
            if outcome is None:
                raise errors.WorkflowNotFoundError(workflow_id)
            return outcome if outcome.status in FINAL_STATUSES else None

        outcome = await self._waiter.wait(until, (keys.done_key(workflow_id),), final)
        if outcome is None:
            raise TimeoutError(f"workflow {workflow_id!r} did not finish within {timeout} s")
        name = operations.GET_RESULT
        try:
            value = results.value_of(workflow_id, outcome)
        except errors.EngineError as exc:
            adopted, recorded = await self._record_error(step_id, name, exc, started, workflow_id)
            if adopted:
                return recorded
            raise
        return await self._record_value(step_id, name, value, started, workflow_id)
