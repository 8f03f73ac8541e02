"""Streams: values a workflow appends under a key, read in order by anyone, live.

``ctx.write_stream(key, value)`` appends exactly once (the item and the step that wrote it
are one transaction); ``ctx.close_stream(key)`` ends it. ``read_stream`` yields the values
from ``offset`` on and waits for new ones (woken at once in this process and, on Postgres,
by NOTIFY from others; polled on SQLite); it ends when the stream is closed or the workflow is
final, and raises ``TimeoutError`` when ``timeout`` passes with nothing new.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from engine import errors, serialization
from engine import signals as keys
from engine.records import FINAL_STATUSES
from engine.store import Store
from engine.wakeups import Wakeups


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(
            f"a stream key must be a non-empty string, got {key!r}; name the stream, e.g. "
            "ctx.write_stream('progress', value)"
        )
    return key


def check_offset(offset: object) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be an int >= 0 (a position in the stream), got {offset!r}")
    return offset


def read(
    store: Store,
    wakeups: Wakeups,
    workflow_id: str,
    key: str,
    *,
    offset: int = 0,
    timeout: float | None = 60.0,
) -> Iterator[Any]:
    """The stream's values from ``offset`` on, waiting for new ones (see the module doc)."""
    check_key(key)
    position = check_offset(offset)
    if timeout is not None and (isinstance(timeout, bool) or timeout < 0):
        raise ValueError(f"timeout must be seconds >= 0 or None, got {timeout!r}")
    if store.ready().get_workflow_outcome(workflow_id) is None:
        raise errors.WorkflowNotFoundError(workflow_id)
    what = f"stream {key!r} of workflow {workflow_id!r}"
    while True:
        ended = False
        for row in store.streams.read_stream(workflow_id, key, position):
            if row["closed"]:
                return
            position = row["seq"] + 1
            yield serialization.loads(row["value"], what)
            ended = True  # something new: the timeout counts afresh
        if ended:
            continue
        # Nothing new: wait for a write, a close or the workflow's end (then read once more,
        # since the last values may have been written just before it ended).
        deadline = None if timeout is None else time.monotonic() + timeout

        def news(at: int = position) -> bool | None:
            if store.streams.read_stream(workflow_id, key, at):
                return True
            outcome = store.get_workflow_outcome(workflow_id)
            if outcome is not None and outcome.status in FINAL_STATUSES:
                return False
            return None

        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        found = wakeups.wait_for(
            remaining,
            (keys.stream_key(workflow_id, key), keys.done_key(workflow_id)),
            news,
        )
        if found is None:
            raise TimeoutError(f"no new value in {what} within {timeout} s")
        if found is False:
            return  # the workflow is final and nothing more was written


_END = object()


async def read_async(values: Iterator[Any]) -> AsyncIterator[Any]:
    """``read``'s values as an async iterator: each wait for the next value runs on a thread
    (a reader waiting for news holds that thread, never the event loop)."""
    while True:
        value = await asyncio.to_thread(next, values, _END)
        if value is _END:
            return
        yield value
