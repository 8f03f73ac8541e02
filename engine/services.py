"""What every execution of one engine shares, and small rules both workflow contexts (sync
and async) apply."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from engine import registry, results
from engine.admission import Admission
from engine.store import Store, records
from engine.wakeups import Wakeups

# While waiting, how often to look for a cancel made by another process (on SQLite, which
# cannot push it; Postgres delivers it at once through LISTEN/NOTIFY).
STATUS_RECHECK_S = 1.0


@dataclass(frozen=True)
class Services:
    """What every execution of one engine shares (the runtime builds it once)."""

    store: Store
    wakeups: Wakeups
    admission: Admission
    registry: registry.Registry
    results: results.Results  # handles' source; also who this engine is, for records_for
    executor_id: str
    stopping: threading.Event
    blocking: Callable[[], contextlib.AbstractContextManager[None]]  # a thread blocked waiting
    run_here: Callable[[records.WorkflowRow], bool]  # start a workflow created here
    max_payload_bytes: int


def check_topic(topic: str | None) -> None:
    if topic is not None and not isinstance(topic, str):
        raise TypeError(f"topic must be a string or None, got {type(topic).__name__}")
