"""The store: the only code that talks to a database, as a set of named operations.

Backends (sqlite.py, postgres.py) supply connections, a batch executor and dialect quirks; the
operations themselves, defined here, are shared. All SQL lives in ``engine/sql/<dialect>/``.
Every write goes through the group committer, so concurrent workflows share commits.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

from engine import errors
from engine.store import groupcommit

Row = Mapping[str, Any]
# (recorded by this write?, the workflow's status, still owned by the writer?)
StepOutcome = tuple[bool, str | None, bool]
log = logging.getLogger("waymark.store")

_QUERY_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def load_queries(dialect: str) -> dict[str, str]:
    """Parse ``queries.sql``: blocks introduced by a ``-- name --`` line."""
    text = resources.files("engine.sql").joinpath(dialect, "queries.sql").read_text()
    parts = _QUERY_HEADER.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = "\n".join(line for line in body.splitlines() if not line.startswith("--")).strip()
        queries[name] = sql.rstrip(";")
    return queries


def load_migrations(dialect: str) -> list[tuple[int, str, str]]:
    """The numbered migrations as (version, file name, SQL), in order."""
    folder = resources.files("engine.sql").joinpath(dialect)
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


class Store(abc.ABC):
    dialect: ClassVar[str]

    # How long an operation keeps retrying while the database is unreachable (a restart, a
    # failover) before it gives up and raises.
    retry_for_s = 60.0

    def __init__(self) -> None:
        self.queries = load_queries(self.dialect)
        self._closed = False
        self._committer = groupcommit.GroupCommitter(
            lambda writes: self._retrying(lambda: self._execute_batch(writes)),
            splittable=lambda exc: not self._is_transient(exc),
        )

    # -- what a backend provides -------------------------------------------------------------

    @abc.abstractmethod
    def _execute_batch(
        self, writes: Sequence[Sequence[groupcommit.Statement]]
    ) -> list[list[list[Any]]]:
        """Run the writes' named queries in one transaction, commit, return all their rows."""

    @abc.abstractmethod
    def _is_transient(self, exc: BaseException) -> bool:
        """The database is (for now) unreachable or busy, as opposed to a bad statement."""

    def describe(self) -> str:
        """Where the store points, without secrets (for error messages and logs)."""
        return self.dialect

    def _retrying(self, operation: Callable[[], Any]) -> Any:
        delay, deadline = 0.05, time.monotonic() + self.retry_for_s
        while True:
            try:
                return operation()
            except Exception as exc:
                if self._closed or not self._is_transient(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise errors.SystemDatabaseUnavailableError(
                        f"the system database {self.describe()} stayed unreachable for "
                        f"{self.retry_for_s:.0f} s: {str(exc).strip()}"
                    ) from exc
                log.warning(
                    "system database unavailable (%s); retrying in %.2f s",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
                    delay,
                    extra={"action": "store.retry"},
                )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    @abc.abstractmethod
    def _fetch(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """Run one read-only statement outside any write transaction."""

    @abc.abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the system tables (idempotent, safe across processes)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def _list_param(self, values: Sequence[str] | None) -> Any:
        return list(values) if values is not None else None

    # -- primitives ----------------------------------------------------------------------------

    def write(self, query: str, **params: Any) -> list[Any]:
        return self._committer.submit([(query, params)])[0]

    def write_together(self, *statements: groupcommit.Statement) -> list[list[Any]]:
        """Commit several statements atomically (one transaction); each one's rows."""
        return self._committer.submit(statements)

    def notify_statements(self, payload: str) -> list[groupcommit.Statement]:
        """Statements that wake waiters in other processes at commit (Postgres NOTIFY)."""
        return []

    def fetch(self, query: str, **params: Any) -> list[Any]:
        sql = self.queries[query]
        return self._retrying(lambda: self._fetch(sql, params))  # type: ignore[no-any-return]

    def fetch_one(self, query: str, **params: Any) -> Any | None:
        rows = self.fetch(query, **params)
        return rows[0] if rows else None

    # -- named operations ----------------------------------------------------------------------

    @staticmethod
    def workflow_row(
        *,
        workflow_id: str,
        status: str,
        name: str,
        inputs: str,
        executor_id: str | None,
        application_version: str | None,
        application_id: str | None,
        started_at: int | None,
        parent_workflow_id: str | None = None,
        forked_from: str | None = None,
        queue_name: str | None = None,
        timeout_ms: int | None = None,
        deadline_ms: int | None = None,
        priority: int = 0,
        deduplication_id: str | None = None,
    ) -> groupcommit.Statement:
        """The insert_workflow statement for a new row (also used inside compound writes)."""
        return (
            "insert_workflow",
            {
                "workflow_id": workflow_id,
                "status": status,
                "name": name,
                "inputs": inputs,
                "executor_id": executor_id,
                "application_version": application_version,
                "application_id": application_id,
                "now": now_ms(),
                "started_at": started_at,
                "parent_workflow_id": parent_workflow_id,
                "forked_from": forked_from,
                "queue_name": queue_name,
                "timeout_ms": timeout_ms,
                "deadline_ms": deadline_ms,
                "priority": priority,
                "deduplication_id": deduplication_id,
            },
        )

    def insert_workflow(self, **fields: Any) -> bool:
        """True when this call created the row, False when the ID already existed."""
        return bool(self._committer.submit([self.workflow_row(**fields)])[0])

    def get_workflow(self, workflow_id: str) -> Row | None:
        return self.fetch_one("get_workflow", workflow_id=workflow_id)

    def get_workflow_outcome(self, workflow_id: str) -> Row | None:
        return self.fetch_one("get_workflow_outcome", workflow_id=workflow_id)

    @staticmethod
    def step_row(
        *,
        workflow_id: str,
        step_id: int,
        name: str,
        output: str | None,
        error: str | None,
        started: int,
        child_workflow_id: str | None = None,
    ) -> groupcommit.Statement:
        return (
            "record_step",
            {
                "workflow_id": workflow_id,
                "step_id": step_id,
                "name": name,
                "output": output,
                "error": error,
                "child_workflow_id": child_workflow_id,
                "started": started,
                "completed": now_ms(),
            },
        )

    def record_step(self, executor_id: str, **fields: Any) -> StepOutcome:
        """Record a step's outcome, written by the execution on ``executor_id``."""
        rows = self._committer.submit([self.step_row(**fields)])[0]
        return self.step_outcome(rows, executor_id)

    @staticmethod
    def step_outcome(rows: list[Any], executor_id: str) -> StepOutcome:
        """What a step write reports: (recorded by us?, the workflow's status right now, does
        ``executor_id`` still own it?). Not recorded: another execution recorded the step
        first, and status and ownership are unknown (None, True)."""
        if rows:
            return True, rows[0]["status"], rows[0]["owner"] == executor_id
        return False, None, True

    def get_step(self, workflow_id: str, step_id: int) -> Row | None:
        return self.fetch_one("get_step", workflow_id=workflow_id, step_id=step_id)

    def list_steps(self, workflow_id: str) -> list[Row]:
        return self.fetch("list_steps", workflow_id=workflow_id)

    def finish_workflow(
        self,
        workflow_id: str,
        status: str,
        *,
        executor_id: str,
        output: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Write the final status; False when the row was no longer PENDING (e.g. cancelled)
        or no longer owned by ``executor_id`` (handed to another executor)."""
        rows = self.write(
            "finish_workflow",
            workflow_id=workflow_id,
            status=status,
            output=output,
            error=error,
            now=now_ms(),
            executor_id=executor_id,
        )
        return bool(rows)

    def set_status_if_pending(self, workflow_id: str, status: str, error: str | None) -> bool:
        rows = self.write(
            "set_status_if_pending",
            workflow_id=workflow_id,
            status=status,
            error=error,
            now=now_ms(),
        )
        return bool(rows)

    def recoverable_workflows(self, executor_id: str, application_version: str) -> list[str]:
        rows = self.fetch(
            "recoverable_workflows",
            executor_id=executor_id,
            application_version=application_version,
        )
        return [row["workflow_uuid"] for row in rows]

    def claim_recovery(self, workflow_id: str, executor_id: str) -> Row | None:
        rows = self.write(
            "claim_recovery", workflow_id=workflow_id, executor_id=executor_id, now=now_ms()
        )
        return rows[0] if rows else None

    def list_workflows(
        self,
        *,
        statuses: Sequence[str] | None,
        name: str | None,
        id_prefix: str | None,
        queue_name: str | None,
        application_version: str | None,
        created_after: int | None,
        created_before: int | None,
        limit: int,
        offset: int,
        newest_first: bool,
    ) -> list[Row]:
        query = "list_workflows_newest" if newest_first else "list_workflows_oldest"
        return self.fetch(
            query,
            statuses=self._list_param(statuses),
            name=name,
            id_prefix=id_prefix,
            queue_name=queue_name,
            application_version=application_version,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            offset=offset,
        )

    # -- control ------------------------------------------------------------------------------

    def cancel_workflow(self, workflow_id: str) -> bool:
        """CANCELLED if unfinished; False when there was nothing to cancel."""
        rows, *_ = self.write_together(
            ("cancel_workflow", {"workflow_id": workflow_id, "now": now_ms()}),
            *self.notify_statements(f"stop:{workflow_id}"),
        )
        return bool(rows)

    def cancel_past_deadline(self, workflow_id: str, error: str) -> bool:
        rows, *_ = self.write_together(
            ("cancel_past_deadline", {"workflow_id": workflow_id, "error": error, "now": now_ms()}),
            *self.notify_statements(f"stop:{workflow_id}"),
        )
        return bool(rows)

    def resume_workflow(
        self,
        workflow_id: str,
        *,
        status: str,
        executor_id: str | None,
        queue_name: str | None,
        started_at: int | None,
    ) -> Row | None:
        rows, *_ = self.write_together(
            (
                "resume_workflow",
                {
                    "workflow_id": workflow_id,
                    "status": status,
                    "executor_id": executor_id,
                    "queue_name": queue_name,
                    "started_at": started_at,
                    "now": now_ms(),
                },
            ),
            *(self.notify_statements("enq") if started_at is None else []),
        )
        return rows[0] if rows else None

    # -- queues ---------------------------------------------------------------------------------

    def enqueue_workflow(self, **fields: Any) -> bool:
        """Insert an ENQUEUED (or DELAYED) workflow; False when the ID exists. A deduplication
        ID held by an unfinished workflow of the queue raises ``QueueDeduplicatedError``."""
        try:
            rows = self.write("enqueue_workflow", now=now_ms(), **fields)
        except Exception as exc:
            if self._is_unique_violation(exc, "deduplication_id"):
                raise errors.QueueDeduplicatedError(
                    fields["workflow_id"], fields["queue_name"], fields["deduplication_id"]
                ) from None
            raise
        return bool(rows)

    @abc.abstractmethod
    def _is_unique_violation(self, exc: Exception, column: str) -> bool: ...

    @abc.abstractmethod
    def _exclusive(self) -> contextlib.AbstractContextManager[Callable[..., list[Any]]]:
        """A transaction on a connection of its own; yields ``run(query, **params) -> rows``."""

    def dequeue(
        self,
        queue_name: str,
        application_version: str,
        executor_id: str,
        limit: int,
        concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> list[Row]:
        """Claim up to ``limit`` workflows of a queue within its global concurrency and rate
        limit, counted across all workers in one transaction (under a per-queue lock)."""
        if limit <= 0:
            return []
        now = now_ms()
        claim = {
            "queue_name": queue_name,
            "application_version": application_version,
            "executor_id": executor_id,
            "now": now,
        }
        if concurrency is None and rate_limit is None:
            # No shared budget to count: SKIP LOCKED (or SQLite's single writer) alone keeps
            # concurrent claimers apart, so one statement is enough.
            return self.write("claim_queued", limit=limit, **claim)
        with self._exclusive() as run:
            if not run("try_lock_queue", lock_name=f"waymark-queue:{queue_name}")[0]["locked"]:
                return []  # another worker is dequeuing this queue right now
            if concurrency is not None:
                running = run("queue_running", queue_name=queue_name)[0]["running"]
                limit = min(limit, concurrency - running)
            if rate_limit is not None:
                max_starts, period = rate_limit
                started = run(
                    "queue_started_since", queue_name=queue_name, since=now - int(period * 1000)
                )[0]["started"]
                limit = min(limit, max_starts - started)
            if limit <= 0:
                return []
            return run("claim_queued", limit=limit, **claim)

    def promote_delayed(self) -> None:
        self.write("promote_delayed", now=now_ms())

    def take_over(self, workflow_id: str, executor_id: str, dispatcher_id: str) -> Row | None:
        rows = self.write(
            "take_over",
            workflow_id=workflow_id,
            executor_id=executor_id,
            dispatcher_id=dispatcher_id,
            now=now_ms(),
        )
        return rows[0] if rows else None

    def handed_over_unclaimed(self, executor_id: str, older_than_ms: int) -> list[str]:
        rows = self.fetch(
            "handed_over_unclaimed", executor_id=executor_id, cutoff=now_ms() - older_than_ms
        )
        return [row["workflow_uuid"] for row in rows]

    # -- executors ------------------------------------------------------------------------------

    def heartbeat(
        self,
        executor_id: str,
        application_version: str,
        hostname: str,
        pid: int,
        queues: str | None,
        schedules: str | None,
    ) -> None:
        self.write(
            "heartbeat",
            executor_id=executor_id,
            application_version=application_version,
            hostname=hostname,
            pid=pid,
            queues=queues,
            schedules=schedules,
        )

    def remove_executor(self, executor_id: str) -> None:
        self.write("remove_executor", executor_id=executor_id)

    def list_executors(self) -> list[Row]:
        return self.fetch("list_executors")

    def requeue_dead_executors(
        self, executor_id: str, expiry_ms: int, internal_queue: str
    ) -> dict[str, list[str]]:
        """Re-enqueue the PENDING workflows of executors whose heartbeat expired (judged by the
        database's clock, as the heartbeats are written)."""
        requeued: dict[str, list[str]] = {}
        for row in self.fetch("dead_executors", expiry_ms=expiry_ms, executor_id=executor_id):
            dead = row["executor_id"]
            params = {"dead_executor_id": dead, "expiry_ms": expiry_ms}
            moved, _ = self.write_together(
                (
                    "requeue_dead_executor",
                    {**params, "internal_queue": internal_queue, "now": now_ms()},
                ),
                ("forget_dead_executor", params),
            )
            requeued[dead] = [r["workflow_uuid"] for r in moved]
        return requeued

    def fork_workflow(
        self, new_row: groupcommit.Statement, workflow_id: str, start_step: int, enqueued: bool
    ) -> bool:
        """Insert the fork's row and copy the steps before ``start_step``, atomically."""
        new_id = new_row[1]["workflow_id"]
        inserted, *_ = self.write_together(
            new_row,
            (
                "copy_steps",
                {"new_workflow_id": new_id, "workflow_id": workflow_id, "start_step": start_step},
            ),
            *(self.notify_statements("enq") if enqueued else []),
        )
        return bool(inserted)

    # -- messages and events ----------------------------------------------------------------------

    def send_message(
        self, destination_id: str, message: str, topic: str | None, message_id: str
    ) -> bool:
        """False when the destination does not exist (or this message_id was sent before)."""
        rows, *_ = self.write_together(
            (
                "send_message",
                {
                    "destination_id": destination_id,
                    "topic": topic,
                    "message": message,
                    "message_id": message_id,
                    "now": now_ms(),
                },
            ),
            *self.notify_statements(f"msg:{destination_id}"),
        )
        return bool(rows)

    def oldest_message(self, workflow_id: str, topic: str | None) -> Row | None:
        return self.fetch_one("oldest_message", workflow_id=workflow_id, topic=topic)

    def consume_message(
        self, step: groupcommit.Statement, message_id: str, executor_id: str
    ) -> StepOutcome:
        """Record the recv step and delete the message it holds, in one transaction."""
        params = step[1]
        step_rows, _ = self.write_together(
            step,
            (
                "delete_message",
                {
                    "message_id": message_id,
                    "workflow_id": params["workflow_id"],
                    "step_id": params["step_id"],
                    "output": params["output"],
                },
            ),
        )
        return self.step_outcome(step_rows, executor_id)

    def set_event(
        self, step: groupcommit.Statement, key: str, value: str, executor_id: str
    ) -> StepOutcome:
        """Publish an event and record the step that did, in one transaction."""
        workflow_id = step[1]["workflow_id"]
        _, step_rows, *_ = self.write_together(
            ("set_event", {"workflow_id": workflow_id, "key": key, "value": value}),
            step,
            *self.notify_statements(f"evt:{workflow_id}"),
        )
        return self.step_outcome(step_rows, executor_id)

    def get_event(self, workflow_id: str, key: str) -> Row | None:
        return self.fetch_one("get_event", workflow_id=workflow_id, key=key)

    def listen(self, on_payload: Any, stop: Any) -> None:
        """Deliver other processes' wake-ups to ``on_payload`` until ``stop`` is set.

        Returns at once where the database cannot push (SQLite): waiters poll instead.
        """
        return None
