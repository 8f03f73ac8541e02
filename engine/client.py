"""Inspection and control of workflows without executing any: what the console and scripts use.

``BaseClient`` holds what ``Client`` and ``Engine`` share; an engine adds execution on top.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

from engine import errors, handle, rows, store
from engine.records import Status, StepInfo, WorkflowStatus


def _not_yet(feature: str) -> NotImplementedError:
    return NotImplementedError(
        f"{feature} is not implemented in this version of Waymark yet; nothing was changed"
    )


class BaseClient:
    def __init__(self, database_url: str, schema: str) -> None:
        self._store = store.connect(database_url, schema)
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def _ready(self) -> store.Store:
        """The store, with the system tables created (once, on first use)."""
        if not self._migrated:
            with self._migrate_lock:
                if not self._migrated:
                    self._store.migrate()
                    self._migrated = True
        return self._store

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

    # -- control (the control-and-time part of the roadmap) -------------------------------------

    def cancel_workflow(self, workflow_id: str) -> None:
        raise _not_yet("cancel_workflow")

    def resume_workflow(self, workflow_id: str) -> handle.WorkflowHandle:
        raise _not_yet("resume_workflow")

    def fork_workflow(
        self,
        workflow_id: str,
        start_step: int,
        *,
        new_workflow_id: str | None = None,
        application_version: str | None = None,
    ) -> handle.WorkflowHandle:
        raise _not_yet("fork_workflow")

    def send(self, destination_id: str, message: Any, topic: str | None = None) -> None:
        raise _not_yet("send (messages)")

    def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        raise _not_yet("get_event (events)")


class Client(BaseClient):
    """Inspect and control workflows in a system database from any process."""

    def __init__(self, database_url: str, *, schema: str = "waymark") -> None:
        super().__init__(database_url, schema)

    def start_workflow(self, name: str, input: Any = None, **options: Any) -> handle.WorkflowHandle:
        raise _not_yet("Client.start_workflow (enqueue by name; arrives with queues)")

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
