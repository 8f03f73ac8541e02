"""The store: the only code that talks to a database, as a set of named operations.

Backends (sqlite.py, postgres.py) supply connections, a batch executor and dialect quirks; the
operations themselves, defined here, are shared. All SQL lives in ``engine/sql/<dialect>/``.
Every write goes through the group committer, so concurrent workflows share commits. Rows
come back as the typed records of ``records.py``; nothing outside the store sees a column name.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

from engine import clock, errors, partitions, signals
from engine import metrics as metrics_mod
from engine.store import groupcommit, records

log = logging.getLogger("waymark.store")

_QUERY_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


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


def workflow_statement(new: records.NewWorkflow) -> groupcommit.Statement:
    """The insert_workflow statement for a new row (also used inside compound writes)."""
    return (
        "insert_workflow",
        {
            "workflow_id": new.workflow_id,
            "status": new.status,
            "name": new.name,
            "inputs": new.inputs,
            "executor_id": new.executor_id,
            "application_version": new.application_version,
            "application_id": new.application_id,
            "now": clock.now_ms(),
            "started_at": new.started_at,
            "parent_workflow_id": new.parent_workflow_id,
            "forked_from": new.forked_from,
            "queue_name": new.queue_name,
            "timeout_ms": new.timeout_ms,
            "deadline_ms": new.deadline_ms,
            "priority": new.priority,
            "deduplication_id": new.deduplication_id,
            "delay_until": new.delay_until,
            "traceparent": new.traceparent,
            "attributes": new.attributes,
            "partition_key": new.partition_key,
        },
    )


def step_statement(step: records.NewStep) -> groupcommit.Statement:
    return (
        "record_step",
        {
            "workflow_id": step.workflow_id,
            "step_id": step.step_id,
            "name": step.name,
            "output": step.output,
            "error": step.error,
            "child_workflow_id": step.child_workflow_id,
            "started": step.started,
            "completed": clock.now_ms(),
        },
    )


def step_outcome(rows: Sequence[Any], executor_id: str) -> records.StepOutcome:
    """What a step write's rows say (see ``records.StepOutcome``)."""
    if rows:
        return records.StepOutcome(True, rows[0]["status"], rows[0]["owner"] == executor_id)
    return records.StepOutcome(False, None, True)


class Store(abc.ABC):
    dialect: ClassVar[str]

    # How long an operation keeps retrying while the database is unreachable (a restart, a
    # failover) before it gives up and raises.
    retry_for_s = 60.0
    # How often a waiter re-reads the database for changes made by other processes (where
    # they cannot be pushed, or as a safety net where they are).
    poll_interval = 1.0
    # Whether ``listen`` delivers other processes' wake-ups (else waiters only poll).
    pushes_changes = False
    # Group-commit batches committed at once (see ``groupcommit``): one per writer connection;
    # and how long a queued write waits for the commit in flight before it leads its own.
    commit_leaders = 1
    commit_hedge_s: float | None = None
    # Where the store reports commit batches and retried errors (the engine sets its own).
    metrics: metrics_mod.NullMetrics = metrics_mod.NullMetrics()

    def __init__(self) -> None:
        self.queries = load_queries(self.dialect)
        self._closed = False
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self._committer = groupcommit.GroupCommitter(
            lambda writes: self._retrying(lambda: self._execute_batch(writes)),
            splittable=lambda exc: not self.is_transient(exc),
            on_batch=lambda size: self.metrics.commit_batch(size),
            leaders=self.commit_leaders,
            hedge_s=self.commit_hedge_s,
        )

    # -- what a backend provides -------------------------------------------------------------

    @abc.abstractmethod
    def _execute_batch(
        self, writes: Sequence[Sequence[groupcommit.Statement]]
    ) -> list[list[list[Any]]]:
        """Run the writes' named queries in one transaction, commit, return all their rows."""

    @abc.abstractmethod
    def is_transient(self, exc: BaseException) -> bool:
        """The database is (for now) unreachable or busy, as opposed to a bad statement."""

    def describe(self) -> str:
        """Where the store points, without secrets (for error messages and logs)."""
        return self.dialect

    @abc.abstractmethod
    def _fetch(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """Run one read-only statement outside any write transaction."""

    @abc.abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the system tables (idempotent, safe across processes)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def _is_unique_violation(self, exc: Exception, column: str) -> bool: ...

    @abc.abstractmethod
    def _exclusive(self) -> contextlib.AbstractContextManager[Callable[..., list[Any]]]:
        """A transaction on a connection of its own; yields ``run(query, **params) -> rows``."""

    def _list_param(self, values: Sequence[str] | None) -> Any:
        return list(values) if values is not None else None

    def _notify(self, payload: str) -> list[groupcommit.Statement]:
        """Statements that wake waiters in other processes at commit (Postgres NOTIFY)."""
        return []

    def listen(self, on_payload: Callable[[str], None], stop: threading.Event) -> None:
        """Deliver other processes' wake-ups to ``on_payload`` until ``stop`` is set.

        Returns at once where the database cannot push (SQLite): waiters poll instead.
        """
        return None

    def ready(self) -> Store:
        """This store, with the system tables created or upgraded (once, on first use)."""
        if not self._migrated:
            with self._migrate_lock:
                if not self._migrated:
                    try:
                        self.migrate()
                    except Exception as exc:
                        if not self.is_transient(exc):
                            raise
                        raise errors.EngineError(
                            f"cannot reach the system database {self.describe()}: "
                            f"{str(exc).strip()}; check the database URL and that the "
                            "server is running"
                        ) from None
                    self._migrated = True
        return self

    # -- primitives ----------------------------------------------------------------------------

    def _retrying(self, operation: Callable[[], Any]) -> Any:
        delay, deadline = 0.05, time.monotonic() + self.retry_for_s
        while True:
            try:
                return operation()
            except Exception as exc:
                if self._closed or not self.is_transient(exc):
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
                self.metrics.db_error_retried()
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _write(self, query: str, params: Mapping[str, Any]) -> list[Any]:
        return self._committer.submit([(query, params)])[0]

    def _write_together(self, *statements: groupcommit.Statement) -> list[list[Any]]:
        """Commit several statements atomically (one transaction); each one's rows."""
        return self._committer.submit(statements)

    def _rows(self, query: str, params: Mapping[str, Any]) -> list[Any]:
        sql = self.queries[query]
        return self._retrying(lambda: self._fetch(sql, params))  # type: ignore[no-any-return]

    def _row(self, query: str, params: Mapping[str, Any]) -> Any | None:
        rows = self._rows(query, params)
        return rows[0] if rows else None

    # -- workflows -----------------------------------------------------------------------------

    def insert_workflow(self, new: records.NewWorkflow) -> bool:
        """True when this call created the row, False when the ID already existed. A
        deduplication ID held by an unfinished workflow of the queue raises
        ``QueueDeduplicatedError``."""
        try:
            return bool(self._committer.submit([workflow_statement(new)])[0])
        except Exception as exc:
            self._raise_if_deduplicated(exc, new)
            raise

    def _raise_if_deduplicated(self, exc: Exception, new: records.NewWorkflow) -> None:
        if new.deduplication_id is not None and self._is_unique_violation(exc, "deduplication_id"):
            raise errors.QueueDeduplicatedError(
                new.workflow_id, new.queue_name or "", new.deduplication_id
            ) from None

    def insert_child(
        self, child: records.NewWorkflow, step: records.NewStep, executor_id: str
    ) -> tuple[bool, records.StepOutcome]:
        """Create a child workflow and record the parent's step that started it, atomically:
        (created?, the step's outcome)."""
        created, step_rows = self._write_together(workflow_statement(child), step_statement(step))
        return bool(created), step_outcome(step_rows, executor_id)

    def fork_workflow(self, new: records.NewWorkflow, source_id: str, start_step: int) -> bool:
        """Insert the fork's row and copy the steps before ``start_step``, atomically; False
        when the new ID is taken."""
        copied: dict[str, Any] = {
            "new_workflow_id": new.workflow_id,
            "workflow_id": source_id,
            "start_step": start_step,
        }
        inserted, *_ = self._write_together(
            workflow_statement(new),
            ("copy_steps", copied),
            ("copy_attempts", copied),
            ("copy_streams", copied),
            *(self._notify(signals.ENQUEUED) if new.queue_name is not None else []),
        )
        return bool(inserted)

    def get_workflow(self, workflow_id: str) -> records.WorkflowRow | None:
        row = self._row("get_workflow", {"workflow_id": workflow_id})
        return records.workflow_row(row) if row is not None else None

    def get_workflow_outcome(self, workflow_id: str) -> records.Outcome | None:
        row = self._row("get_workflow_outcome", {"workflow_id": workflow_id})
        return records.outcome(row) if row is not None else None

    def finish_workflow(
        self,
        workflow_id: str,
        status: str,
        executor_id: str,
        output: str | None,
        error: str | None,
        traceback: str | None = None,
    ) -> records.Outcome | None:
        """Write the final status; the outcome written, or None when the row was no longer
        PENDING (e.g. cancelled) or no longer owned by ``executor_id`` (handed to another).
        ``traceback`` (a failure's) is written in the same transaction."""
        params = {
            "workflow_id": workflow_id,
            "status": status,
            "output": output,
            "error": error,
            "now": clock.now_ms(),
            "executor_id": executor_id,
        }
        if traceback is None:
            rows = self._write("finish_workflow", params)
        else:  # a failure: off the hot path, so a second statement costs nothing that matters
            traced = {"workflow_id": workflow_id, "executor_id": executor_id}
            rows, _ = self._write_together(
                ("finish_workflow", params),
                ("set_workflow_traceback", {**traced, "traceback": traceback}),
            )
        if not rows:
            return None
        return records.Outcome(status, output, error, rows[0]["recovery_attempts"], executor_id)

    async def finish_workflow_async(
        self, workflow_id: str, status: str, executor_id: str, output: str | None, error: str | None
    ) -> records.Outcome | None:
        """``finish_workflow`` from a coroutine: the same group commit, awaited on its loop."""
        params = {
            "workflow_id": workflow_id,
            "status": status,
            "output": output,
            "error": error,
            "now": clock.now_ms(),
            "executor_id": executor_id,
        }
        rows = (await self._committer.submit_async([("finish_workflow", params)]))[0]
        if not rows:
            return None
        return records.Outcome(status, output, error, rows[0]["recovery_attempts"], executor_id)

    def set_status_if_pending(self, workflow_id: str, status: str, error: str | None) -> bool:
        params = {"workflow_id": workflow_id, "status": status, "error": error}
        return bool(self._write("set_status_if_pending", {**params, "now": clock.now_ms()}))

    def recoverable_workflows(self, executor_id: str, application_version: str) -> list[str]:
        params = {"executor_id": executor_id, "application_version": application_version}
        return [row["workflow_uuid"] for row in self._rows("recoverable_workflows", params)]

    def claim_recovery(self, workflow_id: str, executor_id: str) -> records.WorkflowRow | None:
        params = {"workflow_id": workflow_id, "executor_id": executor_id, "now": clock.now_ms()}
        rows = self._write("claim_recovery", params)
        return records.workflow_row(rows[0]) if rows else None

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
        attributes: str | None = None,
    ) -> list[records.WorkflowRow]:
        """``attributes``: the JSON filter of ``attribute_filter`` (every pair must match)."""
        query = "list_workflows_newest" if newest_first else "list_workflows_oldest"
        if attributes is not None:
            query = query.replace("list_workflows", "list_workflows_by_attributes")
        params = {
            "statuses": self._list_param(statuses),
            "name": name,
            "id_prefix": id_prefix,
            "queue_name": queue_name,
            "application_version": application_version,
            "created_after": created_after,
            "created_before": created_before,
            "limit": limit,
            "offset": offset,
            "attributes": attributes,
        }
        return [records.workflow_row(row) for row in self._rows(query, params)]

    def attribute_filter(self, attributes: Mapping[str, Any]) -> str:
        """A checked ``{key: value}`` filter as this dialect's list_workflows_by_attributes
        takes it (Postgres: a JSON object for @>; SQLite: pairs for workflow_attributes)."""
        return json.dumps(dict(attributes), ensure_ascii=False)

    def set_attributes(
        self, step: records.NewStep, attributes: str, executor_id: str
    ) -> records.StepOutcome:
        """Merge into a workflow's attributes and record the step that did, in one
        transaction."""
        params = {"workflow_id": step.workflow_id, "attributes": attributes}
        _, step_rows = self._write_together(("set_attributes", params), step_statement(step))
        return step_outcome(step_rows, executor_id)

    # -- steps ---------------------------------------------------------------------------------

    def record_step(self, step: records.NewStep, executor_id: str) -> records.StepOutcome:
        """Record a step's outcome, written by the execution on ``executor_id``."""
        rows = self._committer.submit([step_statement(step)])[0]
        return step_outcome(rows, executor_id)

    async def record_step_async(
        self, step: records.NewStep, executor_id: str
    ) -> records.StepOutcome:
        """``record_step`` from a coroutine: the same group commit, awaited on its loop."""
        rows = (await self._committer.submit_async([step_statement(step)]))[0]
        return step_outcome(rows, executor_id)

    def get_step(self, workflow_id: str, step_id: int) -> tuple[records.StepRow, str | None] | None:
        """A recorded step and the workflow's owner now (None: no such step)."""
        row = self._row("get_step", {"workflow_id": workflow_id, "step_id": step_id})
        return (records.step_row(row), row["owner"]) if row is not None else None

    def list_steps(self, workflow_id: str) -> list[records.StepRow]:
        return [
            records.step_row(row) for row in self._rows("list_steps", {"workflow_id": workflow_id})
        ]

    # -- control ------------------------------------------------------------------------------

    def write_stream(
        self,
        step: records.NewStep,
        key: str,
        value: str | None,
        closed: bool,
        executor_id: str,
    ) -> records.StepOutcome:
        """Append a value (or the close marker) to a stream and record the step that did, in
        one transaction; readers elsewhere are woken at commit."""
        item = {
            "workflow_id": step.workflow_id,
            "key": key,
            "value": value,
            "closed": int(closed),
            "step_id": step.step_id,
        }
        _, step_rows, *_ = self._write_together(
            ("write_stream", item),
            step_statement(step),
            *self._notify(signals.stream_key(step.workflow_id, key)),
        )
        return step_outcome(step_rows, executor_id)

    def read_stream(self, workflow_id: str, key: str, offset: int) -> list[Any]:
        """Rows (seq, value, closed) from ``offset`` on, in order (at most 1,000)."""
        params = {"workflow_id": workflow_id, "key": key, "offset": offset}
        return self._rows("read_stream", params)

    def stream_closed(self, workflow_id: str, key: str) -> bool:
        params = {"workflow_id": workflow_id, "key": key}
        return self._row("stream_closed", params) is not None

    def list_streams(self, workflow_id: str) -> list[Any]:
        """Rows (key, items, closed) of a workflow's streams."""
        return self._rows("list_streams", {"workflow_id": workflow_id})

    def set_queue_paused(self, queue_name: str, paused: bool) -> None:
        params = {"queue_name": queue_name, "paused": paused, "now": clock.now_ms()}
        self._write("set_queue_paused", params)

    def set_queue_limits(self, queue_name: str, limits: str) -> None:
        """Merge ``limits`` (a JSON object of changed limits) into the queue's settings."""
        params = {"queue_name": queue_name, "limits": limits, "now": clock.now_ms()}
        self._write("set_queue_limits", params)

    def queue_settings(self) -> list[Any]:
        """Rows (queue_name, paused, limits JSON text) of every controlled queue."""
        return self._rows("queue_settings", {})

    def queue_counts(self) -> list[Any]:
        """Rows (queue_name, enqueued, running, delayed, oldest_enqueued_at) per queue."""
        return self._rows("queue_counts", {})

    def queue_seen(self, queue_name: str) -> bool:
        return self._row("queue_seen", {"queue_name": queue_name}) is not None

    # -- managed schedules (0009_schedules) ------------------------------------------------------

    def _schedule_change(self, query: str, params: dict[str, Any]) -> bool:
        """One schedule write that wakes every scheduler (NOTIFY on Postgres); True when it
        matched the schedule."""
        rows, *_ = self._write_together((query, params), *self._notify(signals.SCHEDULES))
        return bool(rows)

    def upsert_schedule(
        self,
        name: str,
        workflow_name: str,
        cron: str,
        timezone: str,
        queue: str | None,
        next_fire_at: int,
    ) -> None:
        params = {
            "name": name,
            "workflow_name": workflow_name,
            "cron": cron,
            "timezone": timezone,
            "queue": queue,
            "next_fire_at": next_fire_at,
            "now": clock.now_ms(),
        }
        self._schedule_change("upsert_schedule", params)

    def get_schedule(self, name: str) -> Any | None:
        return self._row("get_schedule", {"name": name})

    def list_schedules(self) -> list[Any]:
        return self._rows("list_schedules", {})

    def pause_schedule(self, name: str) -> bool:
        return self._schedule_change("pause_schedule", {"name": name, "now": clock.now_ms()})

    def resume_schedule(self, name: str, next_fire_at: int) -> bool:
        params = {"name": name, "next_fire_at": next_fire_at, "now": clock.now_ms()}
        return self._schedule_change("resume_schedule", params)

    def delete_schedule(self, name: str) -> bool:
        return self._schedule_change("delete_schedule", {"name": name})

    def advance_schedule(
        self, name: str, expected: int, fired_at: int | None, next_fire_at: int
    ) -> bool:
        """Move the schedule past the tick ``expected`` it fired; False when another worker
        (or a change to the schedule) moved it first."""
        params = {
            "name": name,
            "expected": expected,
            "fired_at": fired_at,
            "next_fire_at": next_fire_at,
        }
        return bool(self._write("advance_schedule", params))

    def schedule_fired(self, name: str, fired_at: int) -> None:
        self._write("schedule_fired", {"name": name, "fired_at": fired_at})

    def workflow_name_seen(self, name: str) -> bool:
        return self._row("workflow_name_seen", {"name": name}) is not None

    def list_child_ids(self, workflow_id: str) -> list[str]:
        found = self._rows("list_child_ids", {"workflow_id": workflow_id})
        return [row["workflow_uuid"] for row in found]

    def deduplicated_holder(self, queue_name: str, deduplication_id: str) -> str | None:
        """The unfinished workflow of ``queue_name`` holding ``deduplication_id``, if any."""
        params = {"queue_name": queue_name, "deduplication_id": deduplication_id}
        row = self._row("deduplicated_holder", params)
        return row["workflow_uuid"] if row is not None else None

    def cancel_workflow(self, workflow_id: str) -> bool:
        """CANCELLED if unfinished; False when there was nothing to cancel."""
        rows, *_ = self._write_together(
            ("cancel_workflow", {"workflow_id": workflow_id, "now": clock.now_ms()}),
            *self._notify(signals.stop_key(workflow_id)),
        )
        return bool(rows)

    def cancel_past_deadline(self, workflow_id: str, error: str) -> bool:
        params = {"workflow_id": workflow_id, "error": error, "now": clock.now_ms()}
        rows, *_ = self._write_together(
            ("cancel_past_deadline", params), *self._notify(signals.stop_key(workflow_id))
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
    ) -> records.WorkflowRow | None:
        """Back to work from the last completed step: PENDING under ``executor_id`` (it runs
        there now, ``started_at`` given) or ENQUEUED on ``queue_name``; None when the workflow
        was not in a resumable status."""
        params = {
            "workflow_id": workflow_id,
            "status": status,
            "executor_id": executor_id,
            "queue_name": queue_name,
            "started_at": started_at,
            "now": clock.now_ms(),
        }
        rows, *_ = self._write_together(
            ("resume_workflow", params),
            *(self._notify(signals.ENQUEUED) if started_at is None else []),
        )
        return records.workflow_row(rows[0]) if rows else None

    # -- queues ---------------------------------------------------------------------------------

    def dequeue(
        self,
        queue_name: str,
        application_version: str,
        executor_id: str,
        limit: int,
        concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> list[records.WorkflowRow]:
        """Claim up to ``limit`` workflows of a queue within its global concurrency and rate
        limit, counted across all workers in one transaction (under a per-queue lock)."""
        if limit <= 0:
            return []
        now = clock.now_ms()
        claim = {
            "queue_name": queue_name,
            "application_version": application_version,
            "executor_id": executor_id,
            "now": now,
        }
        if concurrency is None and rate_limit is None:
            # No shared budget to count: SKIP LOCKED (or SQLite's single writer) alone keeps
            # concurrent claimers apart, so one statement is enough.
            rows = self._write("claim_queued", {**claim, "limit": limit})
            return [records.workflow_row(row) for row in rows]
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
            return [records.workflow_row(row) for row in run("claim_queued", limit=limit, **claim)]

    def dequeue_partitioned(
        self,
        queue_name: str,
        application_version: str,
        executor_id: str,
        limit: int,
        partition_concurrency: int,
        concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> list[records.WorkflowRow]:
        """``dequeue`` for a partitioned queue: under the queue's lock, count each partition's
        running workflows and give the free slots to the partitions in turn (partitions.py)."""
        if limit <= 0:
            return []
        now = clock.now_ms()
        claim = {
            "queue_name": queue_name,
            "application_version": application_version,
            "executor_id": executor_id,
            "now": now,
        }
        with self._exclusive() as run:
            if not run("try_lock_queue", lock_name=f"waymark-queue:{queue_name}")[0]["locked"]:
                return []
            if concurrency is not None:
                running = run("queue_running", queue_name=queue_name)[0]["running"]
                limit = min(limit, concurrency - running)
            if rate_limit is not None:
                max_starts, period = rate_limit
                since = now - int(period * 1000)
                started = run("queue_started_since", queue_name=queue_name, since=since)
                limit = min(limit, max_starts - started[0]["started"])
            if limit <= 0:
                return []
            found = [
                partitions.Partition(row["partition_key"], row["running"], row["waiting"])
                for row in run("queue_partitions", queue_name=queue_name)
            ]
            claimed = []
            for key, n in partitions.allot(found, limit, partition_concurrency).items():
                rows = run("claim_queued_partition", partition_key=key, limit=n, **claim)
                claimed += [records.workflow_row(row) for row in rows]
            return claimed

    def promote_delayed(self) -> None:
        self._write("promote_delayed", {"now": clock.now_ms()})

    # -- debouncing (engine/debounce.py) -------------------------------------------------------

    def push_burst(
        self, name: str, key: str, inputs: str, period_ms: int, max_wait_ms: int | None
    ) -> tuple[str | None, bool]:
        """Join the open burst of ``name`` and ``key``: (its workflow ID or None when none is
        open, whether a burst that was due got started on the way)."""
        params = {
            "name": name,
            "debounce_key": key,
            "inputs": inputs,
            "period_ms": period_ms,
            "max_wait_ms": max_wait_ms,
            "now": clock.now_ms(),
        }
        due, pushed = self._write_together(
            ("debounce_start_due", {k: params[k] for k in ("name", "debounce_key", "now")}),
            ("debounce_push", params),
        )
        return (pushed[0]["workflow_uuid"] if pushed else None), bool(due)

    def open_burst(self, new: records.NewWorkflow) -> bool:
        """Insert the DELAYED row opening a burst; False when another process opened one of
        the same name and key first."""
        _, params = workflow_statement(new)
        try:
            return bool(
                self._write("insert_debounced", {**params, "debounce_key": new.debounce_key})
            )
        except Exception as exc:
            if self._is_unique_violation(exc, "debounce_key"):
                return False
            raise

    def take_over(
        self, workflow_id: str, executor_id: str, dispatcher_id: str, application_version: str
    ) -> records.WorkflowRow | None:
        params = {
            "workflow_id": workflow_id,
            "executor_id": executor_id,
            "dispatcher_id": dispatcher_id,
            "application_version": application_version,
            "now": clock.now_ms(),
        }
        rows = self._write("take_over", params)
        return records.workflow_row(rows[0]) if rows else None

    def handed_over_unclaimed(self, executor_id: str, older_than_ms: int) -> list[str]:
        now = clock.now_ms()
        params = {"executor_id": executor_id, "cutoff": now - older_than_ms, "now": now}
        return [row["workflow_uuid"] for row in self._write("handed_over_unclaimed", params)]

    def announce_freed(self) -> None:
        """Wake the claiming loops of other processes (Postgres NOTIFY): a run ended here, so a
        queue slot may be free (a Celery worker tells its dispatcher at once)."""
        statements = self._notify(signals.ENQUEUED)
        if statements:
            self._write_together(*statements)

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
        params = {
            "executor_id": executor_id,
            "application_version": application_version,
            "hostname": hostname,
            "pid": pid,
            "queues": queues,
            "schedules": schedules,
        }
        self._write("heartbeat", params)

    def describe_executor(self, executor_id: str, role: str, node_name: str | None) -> None:
        """Record what the executor is (0008_fleet): worker, dispatcher or celery."""
        params = {"executor_id": executor_id, "role": role, "node_name": node_name}
        self._write("describe_executor", params)

    def remove_executor(self, executor_id: str) -> None:
        self._write("remove_executor", {"executor_id": executor_id})

    def list_executors(self) -> list[records.ExecutorRow]:
        return [records.executor_row(row) for row in self._rows("list_executors", {})]

    def requeue_dead_executors(
        self, executor_id: str, expiry_ms: int, internal_queue: str
    ) -> dict[str, list[str]]:
        """Re-enqueue the PENDING workflows of executors whose heartbeat expired (judged by the
        database's clock, as the heartbeats are written)."""
        requeued: dict[str, list[str]] = {}
        dead_rows = self._rows(
            "dead_executors", {"expiry_ms": expiry_ms, "executor_id": executor_id}
        )
        for row in dead_rows:
            dead = row["executor_id"]
            params = {"dead_executor_id": dead, "expiry_ms": expiry_ms}
            moved, _ = self._write_together(
                (
                    "requeue_dead_executor",
                    {**params, "internal_queue": internal_queue, "now": clock.now_ms()},
                ),
                ("forget_dead_executor", params),
            )
            requeued[dead] = [r["workflow_uuid"] for r in moved]
        return requeued

    # -- messages and events ----------------------------------------------------------------------

    def send_message(
        self, destination_id: str, message: str, topic: str | None, message_id: str
    ) -> bool:
        """False when the destination does not exist (or this message_id was sent before)."""
        params = {
            "destination_id": destination_id,
            "topic": topic,
            "message": message,
            "message_id": message_id,
            "now": clock.now_ms(),
        }
        rows, *_ = self._write_together(
            ("send_message", params), *self._notify(signals.message_key(destination_id))
        )
        return bool(rows)

    def oldest_message(self, workflow_id: str, topic: str | None) -> records.Message | None:
        row = self._row("oldest_message", {"workflow_id": workflow_id, "topic": topic})
        return records.Message(row["message_uuid"], row["message"]) if row is not None else None

    def consume_message(
        self, step: records.NewStep, message_id: str, executor_id: str
    ) -> records.StepOutcome:
        """Record the recv step and delete the message it holds, in one transaction."""
        delete = {
            "message_id": message_id,
            "workflow_id": step.workflow_id,
            "step_id": step.step_id,
            "output": step.output,
        }
        step_rows, _ = self._write_together(step_statement(step), ("delete_message", delete))
        return step_outcome(step_rows, executor_id)

    def set_event(
        self, step: records.NewStep, key: str, value: str, executor_id: str
    ) -> records.StepOutcome:
        """Publish an event and record the step that did, in one transaction."""
        event = {"workflow_id": step.workflow_id, "key": key, "value": value}
        _, step_rows, *_ = self._write_together(
            ("set_event", event),
            step_statement(step),
            *self._notify(signals.event_key(step.workflow_id)),
        )
        return step_outcome(step_rows, executor_id)

    def get_event(self, workflow_id: str, key: str) -> str | None:
        """The event's stored value (JSON text), or None when it was never set."""
        row = self._row("get_event", {"workflow_id": workflow_id, "key": key})
        return row["value"] if row is not None else None

    # -- attempts, tracebacks and waits (issue #12) ---------------------------------------------

    def record_attempt(self, attempt: records.NewAttempt) -> int | None:
        """Record one failed attempt of a step; its number (None: a duplicate execution's
        record of the same number came first)."""
        params = {
            "workflow_id": attempt.workflow_id,
            "step_id": attempt.step_id,
            "error": attempt.error,
            "traceback": attempt.traceback,
            "started": attempt.started,
            "completed": attempt.completed,
        }
        rows = self._write("record_attempt", params)
        return int(rows[0]["attempt"]) if rows else None

    def list_attempts(self, workflow_id: str, step_id: int | None) -> list[records.AttemptRow]:
        rows = self._rows("list_attempts", {"workflow_id": workflow_id, "step_id": step_id})
        return [records.attempt_row(row) for row in rows]

    def workflow_tracebacks(self, workflow_ids: Sequence[str]) -> dict[str, str]:
        """The tracebacks of those of ``workflow_ids`` that ended in ERROR with one."""
        if not workflow_ids:
            return {}
        params = {"workflow_ids": self._list_param(workflow_ids)}
        return {
            row["workflow_uuid"]: row["traceback"]
            for row in self._rows("workflow_tracebacks", params)
        }

    def set_waiting(self, workflow_id: str, executor_id: str, waiting: str | None) -> None:
        params = {"workflow_id": workflow_id, "executor_id": executor_id, "waiting": waiting}
        self._write("set_waiting", params)

    def get_waiting(self, workflow_id: str) -> str | None:
        row = self._row("get_waiting", {"workflow_id": workflow_id})
        return row["waiting"] if row is not None else None

    # -- data lifecycle (engine/lifecycle.py): each in a transaction of its own, off the
    # group committer, so a long delete or import never holds up workflow writes --------------

    def get_traceparent(self, workflow_id: str) -> str | None:
        row = self._row("get_traceparent", {"workflow_id": workflow_id})
        return row["traceparent"] if row is not None else None

    def lifecycle_rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        """A lifecycle read (export, children, garbage collection candidates) as dicts."""
        return [dict(row) for row in self._rows(query, params)]

    def delete_final(self, workflow_ids: Sequence[str]) -> list[str]:
        """Delete those of ``workflow_ids`` that are final, with every row held by their IDs;
        the IDs deleted. An unfinished one is left alone (locked first on Postgres, so a
        resume landing meanwhile waits, then finds nothing)."""

        def attempt() -> list[str]:
            with self._exclusive() as run:
                locked = run("lifecycle_lock_final", ids=json.dumps(list(workflow_ids)))
                if not locked:
                    return []
                ids = json.dumps([row["workflow_uuid"] for row in locked])
                run("lifecycle_delete_steps", ids=ids)
                run("lifecycle_delete_events", ids=ids)
                run("lifecycle_delete_messages", ids=ids)
                run("lifecycle_delete_attempts", ids=ids)
                run("lifecycle_delete_streams", ids=ids)
                # Every table that holds rows by workflow ID has its delete here.
                return [row["workflow_uuid"] for row in run("lifecycle_delete_workflows", ids=ids)]

        return self._retrying(attempt)  # type: ignore[no-any-return]

    def import_rows(
        self, workflow: Mapping[str, Any], held: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> bool:
        """Insert an exported workflow's row and the rows it holds (by insert query: steps,
        events, messages, attempts, stream items) in one transaction; False when the ID
        exists."""

        def attempt() -> bool:
            with self._exclusive() as run:
                if not run("import_workflow_row", **workflow):
                    return False
                for name, rows in held.items():
                    for row in rows:
                        run(name, **row)
                return True

        return self._retrying(attempt)  # type: ignore[no-any-return]
