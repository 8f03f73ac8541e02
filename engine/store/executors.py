"""Executors (0008_fleet): heartbeats, what each executor is, and re-enqueuing the work of
those whose heartbeat expired.

Owned by the store as ``store.executors``; it gets the store's primitives explicitly.
"""

from __future__ import annotations

from engine import clock
from engine.store import records, statements


class Executors:
    def __init__(
        self,
        *,
        write: statements.Write,
        write_together: statements.WriteTogether,
        rows: statements.Rows,
    ) -> None:
        self._write = write
        self._write_together = write_together
        self._rows = rows

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
