"""The shape of an executor's heartbeat: what a live worker says about itself.

Every launched engine upserts one row of ``executors`` every few seconds (its ID, version,
host, pid, and, as JSON, the queues it serves with their limits and its schedules). This module
is the one definition of that JSON, written by the worker loop and read by the console.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.queues import Queue


@dataclass(frozen=True)
class ServedQueue:
    """A queue as a heartbeat lists it (the internal queue included)."""

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    partition_concurrency: int | None = None

    def limits(self) -> dict[str, Any]:
        """The limits that are set, by name."""
        found = {
            "concurrency": self.concurrency,
            "worker_concurrency": self.worker_concurrency,
            "rate_limit": self.rate_limit,
            "partition_concurrency": self.partition_concurrency,
        }
        return {k: v for k, v in found.items() if v is not None}


def encode_queues(queues: Iterable[Queue]) -> str:
    return json.dumps(
        [
            {
                "name": q.name,
                "concurrency": q.concurrency,
                "worker_concurrency": q.worker_concurrency,
                "rate_limit": list(q.rate_limit) if q.rate_limit is not None else None,
                "partition_concurrency": q.partition_concurrency,
            }
            for q in queues
        ]
    )


def decode_queues(text: str | None) -> list[ServedQueue]:
    """The queues of a heartbeat (``[]`` for none, or for text that is not a heartbeat's)."""
    try:
        specs = json.loads(text or "[]")
    except ValueError:
        return []
    served = []
    for spec in specs if isinstance(specs, list) else ():
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            continue
        rate = spec.get("rate_limit")
        served.append(
            ServedQueue(
                name=spec["name"],
                concurrency=spec.get("concurrency"),
                worker_concurrency=spec.get("worker_concurrency"),
                rate_limit=(int(rate[0]), float(rate[1])) if rate else None,
                partition_concurrency=spec.get("partition_concurrency"),
            )
        )
    return served


def encode_schedules(schedules: Mapping[str, str]) -> str:
    """``{workflow name: cron expression}``."""
    return json.dumps(dict(schedules))


def decode_schedules(text: str | None) -> dict[str, str]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): str(v) for k, v in found.items()}
