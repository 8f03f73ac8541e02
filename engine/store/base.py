"""The store: the only code that talks to a database, as a set of named operations.

Backends (sqlite.py, postgres.py) supply connections, a batch executor and dialect quirks; the
operations themselves, defined here, are shared. All SQL lives in ``engine/sql/<dialect>/``.
Every write goes through the group committer, so concurrent workflows share commits.
"""

from __future__ import annotations

import abc
import re
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

from engine.store import groupcommit

Row = Mapping[str, Any]

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

    def __init__(self, max_leaders: int = 1) -> None:
        self.queries = load_queries(self.dialect)
        self._committer = groupcommit.GroupCommitter(self._execute_batch, max_leaders)

    # -- what a backend provides -------------------------------------------------------------

    @abc.abstractmethod
    def _execute_batch(self, statements: Sequence[groupcommit.Statement]) -> list[list[Any]]:
        """Run the named queries in one transaction, commit, and return each one's rows."""

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
        return self._committer.submit(query, params)

    def fetch(self, query: str, **params: Any) -> list[Any]:
        return self._fetch(self.queries[query], params)

    def fetch_one(self, query: str, **params: Any) -> Any | None:
        rows = self._fetch(self.queries[query], params)
        return rows[0] if rows else None

    # -- named operations ----------------------------------------------------------------------

    def insert_workflow(
        self,
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
    ) -> bool:
        """True when this call created the row, False when the ID already existed."""
        rows = self.write(
            "insert_workflow",
            workflow_id=workflow_id,
            status=status,
            name=name,
            inputs=inputs,
            executor_id=executor_id,
            application_version=application_version,
            application_id=application_id,
            now=now_ms(),
            started_at=started_at,
            parent_workflow_id=parent_workflow_id,
            forked_from=forked_from,
            queue_name=queue_name,
            timeout_ms=timeout_ms,
            deadline_ms=deadline_ms,
            priority=priority,
            deduplication_id=deduplication_id,
        )
        return bool(rows)

    def get_workflow(self, workflow_id: str) -> Row | None:
        return self.fetch_one("get_workflow", workflow_id=workflow_id)

    def get_workflow_outcome(self, workflow_id: str) -> Row | None:
        return self.fetch_one("get_workflow_outcome", workflow_id=workflow_id)

    def record_step(
        self,
        *,
        workflow_id: str,
        step_id: int,
        name: str,
        output: str | None,
        error: str | None,
        started: int,
        child_workflow_id: str | None = None,
    ) -> tuple[bool, str | None]:
        """Record a step's outcome: (recorded by us?, the workflow's status right now)."""
        rows = self.write(
            "record_step",
            workflow_id=workflow_id,
            step_id=step_id,
            name=name,
            output=output,
            error=error,
            child_workflow_id=child_workflow_id,
            started=started,
            completed=now_ms(),
        )
        if rows:
            return True, rows[0]["status"]
        return False, None

    def get_step(self, workflow_id: str, step_id: int) -> Row | None:
        return self.fetch_one("get_step", workflow_id=workflow_id, step_id=step_id)

    def list_steps(self, workflow_id: str) -> list[Row]:
        return self.fetch("list_steps", workflow_id=workflow_id)

    def finish_workflow(
        self, workflow_id: str, status: str, *, output: str | None = None, error: str | None = None
    ) -> bool:
        """Write the final status; False when the row was no longer PENDING (e.g. cancelled)."""
        rows = self.write(
            "finish_workflow",
            workflow_id=workflow_id,
            status=status,
            output=output,
            error=error,
            now=now_ms(),
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
