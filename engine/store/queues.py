"""Queues: their runtime settings (pause, limits), counts, and claiming enqueued workflows
within the global concurrency and rate limits.

Owned by the store as ``store.queues``; it gets the store's primitives explicitly.
"""

from __future__ import annotations

from typing import Any

from engine import clock, partitions
from engine.store import records, statements


class Queues:
    def __init__(
        self,
        *,
        write: statements.Write,
        rows: statements.Rows,
        row: statements.Row,
        exclusive: statements.Exclusive,
    ) -> None:
        self._write = write
        self._rows = rows
        self._row = row
        self._exclusive = exclusive

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

    def promote_delayed(self) -> set[str]:
        """Enqueue the DELAYED workflows whose time came; the queues they went to."""
        return {
            row["queue_name"] for row in self._write("promote_delayed", {"now": clock.now_ms()})
        }
