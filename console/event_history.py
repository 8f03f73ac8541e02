"""A workflow's event history: every value ``set_event`` gave each key, and the step that set it.

dbos-py records it (its immutable ``workflow_events_history``, beside ``workflow_events``, which
holds only each key's latest value); the engine keeps only the latest value, so a Waymark
source has no history and the page shows only the events panel there.
"""

from __future__ import annotations

from dataclasses import dataclass

from console import dbos_actions, sources
from console.payloads import PREVIEW_CHARS, Payload

SHOWN = 50  # history entries on the page, oldest first
HEAD_CHARS = 4 * PREVIEW_CHARS  # enough of each value for its one-line preview


@dataclass(frozen=True)
class EventSet:
    step: int
    key: str
    payload: Payload


@dataclass(frozen=True)
class History:
    entries: list[EventSet]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.entries)


def of(workflow_id: str) -> History | None:
    """The workflow's first SHOWN event sets, oldest first; None where none is recorded."""
    source = sources.current()
    if not source.is_dbos:
        return None
    params = {"id": workflow_id, "chars": HEAD_CHARS, "limit": SHOWN}
    rows = dbos_actions.read(source, "event_history", params)
    counted = dbos_actions.read(source, "event_history_count", {"id": workflow_id})
    entries = [
        EventSet(int(step), str(key), Payload(head, size, fmt))
        for step, key, head, size, fmt in rows
    ]
    return History(entries, int(counted[0][0]) if counted else len(entries))
