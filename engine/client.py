"""Inspection and control of workflows without executing any: what the console and scripts use.

``BaseClient`` holds what ``Client`` and ``Engine`` share; an engine adds execution on top
(and runs resumed and forked workflows itself where a client hands them to a worker).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from engine import errors, handle, rows, serialization, store
from engine.queues import INTERNAL_QUEUE
from engine.records import Status, StepInfo, WorkflowStatus
from engine.signals import Signals
from engine.store import base


class BaseClient:
    def __init__(
        self, database_url: str, schema: str, db_retry_seconds: float | None = None
    ) -> None:
        self._store = store.connect(database_url, schema, db_retry_seconds)
        self.max_payload_bytes = serialization.DEFAULT_LIMIT
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self._signals = Signals()
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None
        # How often a waiter re-reads the database for changes made by other processes.
        # Postgres pushes them (LISTEN/NOTIFY), so polling there is only a safety net.
        self._poll_interval = 0.1 if self._store.dialect == "sqlite" else 1.0

    def _ready(self) -> store.Store:
        """The store, with the system tables created (once, on first use)."""
        if not self._migrated:
            with self._migrate_lock:
                if not self._migrated:
                    try:
                        self._store.migrate()
                    except Exception as exc:
                        if not self._store._is_transient(exc):
                            raise
                        raise errors.EngineError(
                            f"cannot reach the system database {self._store.describe()}: "
                            f"{str(exc).strip()}; check the database URL and that the "
                            "server is running"
                        ) from None
                    self._migrated = True
        return self._store

    def _ensure_listener(self) -> None:
        if self._listener is None and self._store.dialect == "postgres":
            with self._migrate_lock:
                if self._listener is None:
                    self._listener = threading.Thread(
                        target=self._store.listen,
                        args=(self._signals.fire, self._closing),
                        name="waymark-listen",
                        daemon=True,
                    )
                    self._listener.start()

    def _wait_for(self, timeout: float | None, keys: Sequence[str], check: Any) -> Any:
        """Call ``check()`` until it returns non-None, waking on ``keys``; None on timeout."""
        self._ensure_listener()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._signals.watch(*keys) as woken:
            while True:
                found = check()
                if found is not None:
                    return found
                wait = self._poll_interval
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    wait = min(wait, remaining)
                woken.wait(wait)
                woken.clear()

    # -- inspection ----------------------------------------------------------------------------

    def retrieve_workflow(self, workflow_id: str) -> handle.WorkflowHandle:
        if self._ready().get_workflow_outcome(workflow_id) is None:
            raise errors.WorkflowNotFoundError(workflow_id)
        return handle.WorkflowHandle(workflow_id, self)

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus | None:
        row = self._ready().get_workflow(workflow_id)
        return rows.workflow_status(row) if row is not None else None

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
    ) -> list[WorkflowStatus]:
        statuses = [status] if isinstance(status, str) else status
        for value in statuses or ():
            if value not in Status.__members__:
                raise ValueError(
                    f"unknown status {value!r}; use one of {', '.join(Status.__members__)}"
                )
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        found = self._ready().list_workflows(
            statuses=[str(s) for s in statuses] if statuses is not None else None,
            name=name,
            id_prefix=workflow_id_prefix,
            queue_name=queue_name,
            application_version=application_version,
            created_after=rows.to_ms(created_after, "created_after"),
            created_before=rows.to_ms(created_before, "created_before"),
            limit=limit,
            offset=offset,
            newest_first=newest_first,
        )
        return [rows.workflow_status(row) for row in found]

    def list_steps(self, workflow_id: str) -> list[StepInfo]:
        return [rows.step_info(workflow_id, row) for row in self._ready().list_steps(workflow_id)]

    def _await_final(self, workflow_id: str, timeout: float | None) -> Any:
        return handle.poll_until_final(self._ready().get_workflow_outcome, workflow_id, timeout)

    # -- control -------------------------------------------------------------------------------

    def cancel_workflow(self, workflow_id: str) -> None:
        """Cancel an unfinished workflow; it stops at its next step boundary.

        Cancelling a finished workflow does nothing; an unknown ID raises.
        """
        st = self._ready()
        if st.cancel_workflow(workflow_id):
            self._stopped(workflow_id, Status.CANCELLED)
        elif st.get_workflow_outcome(workflow_id) is None:
            raise errors.WorkflowNotFoundError(workflow_id)

    def _stopped(self, workflow_id: str, status: str) -> None:
        self._signals.fire(f"stop:{workflow_id}")

    def _runs_version(self, version: str | None) -> bool:
        """Whether this process executes workflows of ``version`` itself (a Client never)."""
        return False

    def resume_workflow(self, workflow_id: str) -> handle.WorkflowHandle:
        """Continue a CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED or ENQUEUED workflow from its
        last completed step; a second resume (or one of a running workflow) does nothing."""
        st = self._ready()
        current = st.get_workflow(workflow_id)
        if current is None:
            raise errors.WorkflowNotFoundError(workflow_id)
        here = self._runs_version(current["application_version"])
        row = st.resume_workflow(
            workflow_id,
            status=Status.PENDING if here else Status.ENQUEUED,
            executor_id=self._executor() if here else None,
            queue_name=None if here else INTERNAL_QUEUE,
            started_at=base.now_ms() if here else None,
        )
        if row is not None and here:
            self._run_row(row)
        elif row is not None:
            self._signals.fire("enq")
        return handle.WorkflowHandle(workflow_id, self)

    def fork_workflow(
        self,
        workflow_id: str,
        start_step: int,
        *,
        new_workflow_id: str | None = None,
        application_version: str | None = None,
    ) -> handle.WorkflowHandle:
        """A new workflow with the steps before ``start_step`` copied (not re-run); it runs
        from there. ``start_step=1`` restarts from scratch."""
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 1:
            raise ValueError(f"start_step must be a step number >= 1, got {start_step!r}")
        st = self._ready()
        original = st.get_workflow(workflow_id)
        if original is None:
            raise errors.WorkflowNotFoundError(workflow_id)
        new_id = new_workflow_id if new_workflow_id is not None else str(uuid.uuid4())
        if not isinstance(new_id, str) or not new_id.strip():
            raise ValueError(f"new_workflow_id must be a non-empty string, got {new_id!r}")
        version = application_version or original["application_version"]
        here = self._runs_version(version)
        timeout_ms = original["workflow_timeout_ms"]
        now = base.now_ms()
        new_row = st.workflow_row(
            workflow_id=new_id,
            status=Status.PENDING if here else Status.ENQUEUED,
            name=original["name"],
            inputs=original["inputs"],
            executor_id=self._executor() if here else None,
            application_version=version,
            application_id=None,
            started_at=now if here else None,
            forked_from=workflow_id,
            queue_name=None if here else INTERNAL_QUEUE,
            timeout_ms=timeout_ms,
            deadline_ms=now + timeout_ms if here and timeout_ms is not None else None,
        )
        if not st.fork_workflow(new_row, workflow_id, start_step, enqueued=not here):
            raise errors.EngineError(
                f"cannot fork into workflow ID {new_id!r}: it is already taken; pass another "
                "new_workflow_id"
            )
        if here:
            forked = st.get_workflow(new_id)
            assert forked is not None
            self._run_row(forked)
        else:
            self._signals.fire("enq")
        return handle.WorkflowHandle(new_id, self)

    def _executor(self) -> str | None:
        return None

    def _run_row(self, row: Any, run: Any = None) -> bool:
        """Execute a workflow row claimed by this process (only an Engine does)."""
        return False

    # -- messages and events -------------------------------------------------------------------

    def send(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        """Send ``message`` to a workflow; it receives it with ``ctx.recv(topic)``."""
        _check_topic(topic)
        text = serialization.dumps(
            message, f"the message to workflow {destination_id!r}", self.max_payload_bytes
        )
        if not self._ready().send_message(destination_id, text, topic, str(uuid.uuid4())):
            raise errors.WorkflowNotFoundError(destination_id)
        self._signals.fire(f"msg:{destination_id}")

    def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        """The value a workflow published under ``key``, waiting up to ``timeout`` seconds for
        it; None on timeout."""
        st = self._ready()

        def check() -> tuple[Any] | None:
            row = st.get_event(workflow_id, key)
            if row is None:
                return None
            return (serialization.loads(row["value"], f"event {key!r} of {workflow_id!r}"),)

        found = self._wait_for(timeout, (f"evt:{workflow_id}",), check)
        return found[0] if found is not None else None


def _check_topic(topic: str | None) -> None:
    if topic is not None and not isinstance(topic, str):
        raise TypeError(f"topic must be a string or None, got {type(topic).__name__}")


class Client(BaseClient):
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
        super().__init__(database_url, schema, db_retry_seconds)

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
        delay: float | dt.timedelta | None = None,
        application_version: str | None = None,
    ) -> handle.WorkflowHandle:
        """Enqueue the workflow registered as ``name`` on ``queue`` (None: the internal queue
        every worker serves); a worker of ``application_version`` (any version when None)
        runs it."""
        from engine import engine as engine_module
        from engine.context import seconds
        from engine.queues import delay_ms

        if not isinstance(name, str) or not name:
            raise ValueError("name must be the registered name of a workflow")
        workflow_id = workflow_id if workflow_id is not None else str(uuid.uuid4())
        if not isinstance(workflow_id, str) or not workflow_id.strip():
            raise ValueError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        inputs = serialization.encode_inputs(
            input, f"the input of workflow {name!r}", self.max_payload_bytes
        )
        timeout_ms = int(seconds(timeout, "timeout") * 1000) if timeout is not None else None
        engine_module.enqueue(
            self._ready(),
            workflow_id,
            name,
            inputs,
            queue or INTERNAL_QUEUE,
            timeout_ms,
            priority,
            deduplication_id,
            delay_ms(delay),
            application_version,
            None,
        )
        self._signals.fire("enq")
        return handle.WorkflowHandle(workflow_id, self)

    def close(self) -> None:
        self._closing.set()
        self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
