"""Client: inspect and control workflows in a system database from any process, executing none.

What the console and scripts use. It holds the same ``Control`` an engine does, without a
local executor: workflows it resumes or forks are enqueued on the internal queue that every
launched engine serves, and it starts workflows by name on a queue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from engine import (
    admission,
    debounce,
    errors,
    queue_control,
    registry,
    schedules,
    serialization,
    store,
    streams,
)
from engine.admission import Admission
from engine.control import Control
from engine.handle import WorkflowHandle
from engine.lifecycle import Lifecycle
from engine.queues import INTERNAL_QUEUE, Queue
from engine.records import AttemptInfo, QueueInfo, ScheduleInfo, StepInfo, WorkflowStatus
from engine.results import Results
from engine.wakeups import Wakeups


class Client:
    """Inspect and control workflows in a system database from any process."""

    def __init__(
        self,
        database_url: str,
        *,
        schema: str = "waymark",
        db_retry_seconds: float | None = None,
    ) -> None:
        """``db_retry_seconds``: how long a call retries while the database is unreachable
        before raising SystemDatabaseUnavailableError (default WAYMARK_DB_RETRY_SECONDS or 60)."""
        self.max_payload_bytes = serialization.DEFAULT_LIMIT
        self._store = store.connect(database_url, schema, db_retry_seconds)
        self._wakeups = Wakeups(self._store)
        self.lifecycle = Lifecycle(self._store)
        results = Results(self._store)
        self._admission = Admission(self._store, self._wakeups, self.max_payload_bytes)
        self._control = Control(
            self._store,
            self._wakeups,
            self._admission,
            results,
            max_payload_bytes=self.max_payload_bytes,
        )
        self._queue_control = queue_control.QueueControl(self._store, self._wakeups)
        self._schedules = schedules.Schedules(
            self._store,
            self._wakeups,
            lambda name, input, workflow_id, queue: self.start_workflow(
                name, input, workflow_id=workflow_id, queue=queue
            ),
            schedules.Knows(self._known_workflow, lambda queue: None),
        )

    def start_workflow(
        self,
        name: str,
        input: Any = None,
        *,
        queue: str | None = None,
        workflow_id: str | None = None,
        timeout: float | dt.timedelta | None = None,
        priority: int = 0,
        deduplication_id: str | None = None,
        deduplication_policy: str = "reject",
        delay: float | dt.timedelta | None = None,
        attributes: dict[str, Any] | None = None,
        application_version: str | None = None,
        partition_key: str | None = None,
    ) -> WorkflowHandle:
        """Enqueue the workflow registered as ``name`` on ``queue`` (None: the internal queue
        every worker serves); a worker of ``application_version`` (any version when None)
        runs it."""
        if not isinstance(name, str) or not name:
            raise ValueError("name must be the registered name of a workflow")
        admitted = self._admission.start(
            name,
            input,
            workflow_id=workflow_id,
            timeout=timeout,
            queue=queue or INTERNAL_QUEUE,
            priority=priority,
            deduplication_id=deduplication_id,
            deduplication_policy=deduplication_policy,
            delay=delay,
            attributes=attributes,
            partition_key=partition_key,
            application_version=application_version,
        )
        return self._control.handle(admitted.workflow_id)

    def debouncer(
        self,
        name: str,
        *,
        period: float | dt.timedelta,
        max_wait: float | dt.timedelta | None = None,
        queue: str | None = None,
    ) -> debounce.Debouncer:
        """A ``Debouncer`` of the workflow registered as ``name`` (engine/debounce.py); its
        bursts wait on ``queue`` (None: the internal queue every worker serves). Bursts are
        shared with the engines' debouncers of the same workflow name and key."""
        if not isinstance(name, str) or not name:
            raise ValueError("name must be the registered name of a workflow")
        return debounce.Debouncer(
            name,
            period=period,
            max_wait=max_wait,
            queue=queue,
            admission=self._admission,
            handle=self._control.handle,
        )

    def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle:
        return self._control.retrieve_workflow(workflow_id)

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus | None:
        return self._control.get_workflow_status(workflow_id)

    def list_workflows(
        self,
        *,
        status: str | Sequence[str] | None = None,
        name: str | None = None,
        workflow_id_prefix: str | None = None,
        queue_name: str | None = None,
        application_version: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
        attributes: dict[str, Any] | None = None,
    ) -> list[WorkflowStatus]:
        return self._control.list_workflows(
            status=status,
            name=name,
            workflow_id_prefix=workflow_id_prefix,
            queue_name=queue_name,
            application_version=application_version,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
            attributes=attributes,
        )

    def list_steps(self, workflow_id: str) -> list[StepInfo]:
        return self._control.list_steps(workflow_id)

    def list_attempts(self, workflow_id: str, step_id: int) -> list[AttemptInfo]:
        return self._control.list_attempts(workflow_id, step_id)

    def cancel_workflow(self, workflow_id: str, *, cancel_children: bool = False) -> None:
        self._control.cancel_workflow(workflow_id, cancel_children=cancel_children)

    # -- queue control (durable, seen by every worker) --------------------------------------

    def pause_queue(self, name: str) -> None:
        """A paused queue starts nothing (on any worker); what runs continues."""
        self._queue_control.pause(name)

    def resume_queue(self, name: str) -> None:
        self._queue_control.resume(name)

    def set_queue_limits(
        self,
        name: str,
        *,
        concurrency: int | None = queue_control.UNSET,
        worker_concurrency: int | None = queue_control.UNSET,
        rate_limit: tuple[int, float] | None = queue_control.UNSET,
    ) -> None:
        """Change only the limits given (None: no limit); every worker applies them."""
        self._queue_control.set_limits(
            name,
            concurrency=concurrency,
            worker_concurrency=worker_concurrency,
            rate_limit=rate_limit,
        )

    def list_queues(self) -> list[QueueInfo]:
        return self._queue_control.list_queues()

    # -- managed schedules (engine.schedules; the same on an engine) --------------------------

    def _known_workflow(self, workflow: Any) -> str:
        """A client sees no registry: a workflow is known when the database has seen it."""
        name = workflow if isinstance(workflow, str) else registry.default_name(workflow)
        if not name or not self._store.ready().workflow_name_seen(name):
            raise errors.EngineError(
                f"unknown workflow {name!r}: the database has no run or schedule of it; check "
                "the registered name, or create the schedule from the engine that registers it"
            )
        return name

    def create_schedule(
        self,
        name: str,
        workflow: Any,
        cron: str,
        *,
        timezone: str = "UTC",
        queue: Queue | str | None = None,
    ) -> None:
        """Create the schedule ``name`` (or update it; a pause holds): ``workflow`` runs at
        every tick of ``cron`` read in ``timezone``, with the tick time as its input."""
        queue_name = queue.name if isinstance(queue, Queue) else queue
        self._schedules.create(name, workflow, cron, timezone, queue_name)

    def pause_schedule(self, name: str) -> None:
        self._schedules.pause(name)

    def resume_schedule(self, name: str) -> None:
        self._schedules.resume(name)

    def delete_schedule(self, name: str) -> None:
        self._schedules.delete(name)

    def trigger_schedule(self, name: str) -> WorkflowHandle:
        return self._schedules.trigger(name)

    def backfill_schedule(
        self, name: str, start: dt.datetime, end: dt.datetime
    ) -> list[WorkflowHandle]:
        return self._schedules.backfill(name, start, end)

    def list_schedules(self) -> list[ScheduleInfo]:
        return self._schedules.list()

    def read_stream(
        self, workflow_id: str, key: str, *, offset: int = 0, timeout: float | None = 60.0
    ) -> Iterator[Any]:
        """Yield the values of a workflow's stream ``key`` from ``offset``, waiting for new
        ones; ends when the stream is closed or the workflow is final; ``TimeoutError`` when
        ``timeout`` seconds pass with nothing new."""
        return self._control.read_stream(workflow_id, key, offset=offset, timeout=timeout)

    def read_stream_async(
        self, workflow_id: str, key: str, *, offset: int = 0, timeout: float | None = 60.0
    ) -> AsyncIterator[Any]:
        """``read_stream`` as an async iterator (``async for value in ...``)."""
        return streams.read_async(
            self.read_stream(workflow_id, key, offset=offset, timeout=timeout)
        )

    def list_streams(self, workflow_id: str) -> list[tuple[str, int, bool]]:
        return self._control.list_streams(workflow_id)

    def resume_workflow(
        self, workflow_id: str, *, queue: Queue | str | None = None
    ) -> WorkflowHandle:
        return self._control.resume_workflow(workflow_id, queue=queue)

    def fork_workflow(
        self,
        workflow_id: str,
        start_step: int,
        *,
        new_workflow_id: str | None = None,
        application_version: str | None = None,
        queue: Queue | str | None = None,
        input: Any = admission.UNCHANGED,
    ) -> WorkflowHandle:
        return self._control.fork_workflow(
            workflow_id,
            start_step,
            new_workflow_id=new_workflow_id,
            application_version=application_version,
            queue=queue,
            input=input,
        )

    def send(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        self._control.send(destination_id, message, topic)

    def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        return self._control.get_event(workflow_id, key, timeout)

    # -- the same from async code: each call runs on a thread, the loop never blocks ---------

    async def start_workflow_async(
        self, name: str, input: Any = None, **options: Any
    ) -> WorkflowHandle:
        """``start_workflow`` (same options) without blocking the event loop."""
        return await asyncio.to_thread(functools.partial(self.start_workflow, name, input,
                                                         **options))  # fmt: skip

    async def send_async(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        await asyncio.to_thread(self.send, destination_id, message, topic)

    async def get_event_async(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        return await asyncio.to_thread(self.get_event, workflow_id, key, timeout)

    def close(self) -> None:
        self._wakeups.close()
        self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- data lifecycle (engine.lifecycle) ---------------------------------------------------------

    def delete_workflow(self, workflow_id: str, *, delete_children: bool = False) -> None:
        self.lifecycle.delete_workflow(workflow_id, delete_children=delete_children)

    def export_workflow(self, workflow_id: str, *, children: bool = False) -> dict[str, Any]:
        return self.lifecycle.export_workflow(workflow_id, children=children)

    def import_workflow(self, data: dict[str, Any]) -> str:
        return self.lifecycle.import_workflow(data)

    def garbage_collect(
        self, *, older_than: float | dt.timedelta, keep_last: int | None = None
    ) -> int:
        return self.lifecycle.garbage_collect(older_than=older_than, keep_last=keep_last)
