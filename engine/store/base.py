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
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

from engine import clock, errors, signals
from engine import metrics as metrics_mod
from engine.store import (
    attempts,
    bursts,
    executors,
    groupcommit,
    lifecycle,
    messages,
    queues,
    records,
    schedules,
    streams,
)
from engine.store.statements import (
    finish_outcome,
    finish_statements,
    step_outcome,
    step_statement,
    workflow_statement,
)

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
    commit_relay = False  # see groupcommit: whether a committer thread leads the next batches
    # Where the store reports commit batches and retried errors (the engine sets its own).
    metrics: metrics_mod.NullMetrics = metrics_mod.NullMetrics()

    def __init__(self) -> None:
        self.queries = load_queries(self.dialect)
        self._closed = False
        self._migrated = False
        self._migrate_lock = threading.Lock()
        # Writes that failed with a transient error: each may have committed all the same
        # (the connection dropped after the server committed). engine/orphans.py looks for
        # work such a write left behind only when this count has moved.
        self.uncertain_writes = 0
        self._committer = groupcommit.GroupCommitter(
            lambda writes: self._retrying(lambda: self._commit(writes)),
            # Not a database that is down: that is everyone's error, and a batch that already
            # outlived the retries (SystemDatabaseUnavailableError) must not retry each write
            # alone for as long again, one after another.
            splittable=lambda exc: (
                not self.is_transient(exc)
                and not isinstance(exc, errors.SystemDatabaseUnavailableError)
            ),
            on_batch=lambda size: self.metrics.commit_batch(size),
            leaders=self.commit_leaders,
            hedge_s=self.commit_hedge_s,
            relay=self.commit_relay,
        )
        # The operations beyond workflows and steps, one concept each, composed: every part
        # gets the primitives it uses explicitly (bound here, so a backend's override of
        # ``_notify`` or ``_list_param`` applies to the parts too).
        self.streams = streams.Streams(
            write_together=self._write_together, rows=self._rows, row=self._row, notify=self._notify
        )
        self.queues = queues.Queues(
            write=self._write, rows=self._rows, row=self._row, exclusive=self._counted_exclusive
        )
        self.schedules = schedules.Schedules(
            write=self._write,
            write_together=self._write_together,
            rows=self._rows,
            row=self._row,
            notify=self._notify,
        )
        self.bursts = bursts.Bursts(
            write=self._write,
            write_together=self._write_together,
            is_unique_violation=self._is_unique_violation,
        )
        self.executors = executors.Executors(
            write=self._write, write_together=self._write_together, rows=self._rows
        )
        self.messages = messages.Messages(
            write_together=self._write_together, row=self._row, notify=self._notify
        )
        self.attempts = attempts.Attempts(
            write=self._write, rows=self._rows, row=self._row, list_param=self._list_param
        )
        self.lifecycle = lifecycle.Lifecycle(
            rows=self._rows, exclusive=self._exclusive, retrying=self._retrying
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

    def _commit(self, writes: Sequence[Sequence[groupcommit.Statement]]) -> list[list[Any]]:
        try:
            return self._execute_batch(writes)
        except Exception as exc:
            if self.is_transient(exc):
                self.uncertain_writes += 1
            raise

    @contextlib.contextmanager
    def _counted_exclusive(self) -> Iterator[Callable[..., list[Any]]]:
        """``_exclusive``, counting a transient failure as an uncertain write (a claim's
        commit can be lost on the way back too)."""
        try:
            with self._exclusive() as run:
                yield run
        except Exception as exc:
            if self.is_transient(exc):
                self.uncertain_writes += 1
            raise

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

    async def insert_workflow_async(self, new: records.NewWorkflow) -> bool:
        """``insert_workflow`` from a coroutine: the same group commit, awaited on its loop."""
        try:
            return bool((await self._committer.submit_async([workflow_statement(new)]))[0])
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
        finished = finish_statements(workflow_id, status, executor_id, output, error, traceback)
        rows = self._committer.submit(finished)[0]
        return finish_outcome(rows, status, executor_id, output, error)

    def finish_after_step(
        self,
        step: records.NewStep,
        status: str,
        executor_id: str,
        output: str | None,
        error: str | None,
        traceback: str | None = None,
    ) -> tuple[records.StepOutcome, records.Outcome | None]:
        """Record the workflow's last step and write its final status in one transaction: the
        step's outcome, and ``finish_workflow``'s. The status is written only if this write
        recorded the step (not when another execution had recorded it first)."""
        finished = finish_statements(
            step.workflow_id, status, executor_id, output, error, traceback, step.step_id
        )
        step_rows, rows, *_ = self._committer.submit([step_statement(step), *finished])
        return step_outcome(step_rows, executor_id), finish_outcome(
            rows, status, executor_id, output, error
        )

    async def finish_workflow_async(
        self, workflow_id: str, status: str, executor_id: str, output: str | None, error: str | None
    ) -> records.Outcome | None:
        """``finish_workflow`` from a coroutine: the same group commit, awaited on its loop."""
        finished = finish_statements(workflow_id, status, executor_id, output, error, None)
        rows = (await self._committer.submit_async(finished))[0]
        return finish_outcome(rows, status, executor_id, output, error)

    def set_status_if_pending(self, workflow_id: str, status: str, error: str | None) -> bool:
        params = {"workflow_id": workflow_id, "status": status, "error": error}
        return bool(self._write("set_status_if_pending", {**params, "now": clock.now_ms()}))

    def recoverable_workflows(self, executor_id: str, application_version: str) -> list[str]:
        params = {"executor_id": executor_id, "application_version": application_version}
        return [row["workflow_uuid"] for row in self._rows("recoverable_workflows", params)]

    def claim_recoveries(
        self, workflow_ids: Sequence[str], executor_id: str
    ) -> list[records.WorkflowRow | None]:
        """Claim each workflow for a recovery (None: finished or taken meanwhile), all in one
        transaction: a worker resuming a thousand workflows commits a few times, not a
        thousand (on Postgres the claims of one call are pipelined in one round trip)."""
        now = clock.now_ms()
        claims = [
            ("claim_recovery", {"workflow_id": wid, "executor_id": executor_id, "now": now})
            for wid in workflow_ids
        ]
        found = self._write_together(*claims) if claims else []
        return [records.workflow_row(rows[0]) if rows else None for rows in found]

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

    # -- handing a workflow over (engine/dispatch.py) ---------------------------------------------

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
        wake = self._notify(signals.ENQUEUED)
        if wake:
            self._write_together(*wake)

    def get_traceparent(self, workflow_id: str) -> str | None:
        row = self._row("get_traceparent", {"workflow_id": workflow_id})
        return row["traceparent"] if row is not None else None
