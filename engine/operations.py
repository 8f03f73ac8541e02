"""The steps the engine records for its own operations: their names and what they store.

A workflow's durable operations (sleep, send, recv, events, awaiting a child, select) are
checkpointed as steps like any other, under these reserved names; this module is the one
definition of the names and of each one's stored output, for the engine and for readers of the
step table (the console's timeline).
"""

from __future__ import annotations

from typing import Any

from engine import errors, serialization

SLEEP = "waymark.sleep"  # output: the wake-up time, epoch ms
SEND = "waymark.send"  # output: null
RECV = "waymark.recv"  # output: the message received (null on timeout)
RECV_TIMEOUT = "waymark.recv.timeout"  # output: when the recv gives up, epoch ms
SET_EVENT = "waymark.set_event"  # output: null
GET_EVENT = "waymark.get_event"  # output: the event's value (null on timeout)
GET_EVENT_TIMEOUT = "waymark.get_event.timeout"  # output: when get_event gives up, epoch ms
GET_RESULT = "waymark.get_result"  # output: the awaited workflow's result, or its error
SELECT = "waymark.select"  # output: {"index": the position of the winning future}
SET_ATTRIBUTES = "waymark.set_attributes"  # output: null (the merged pairs are on the workflow)
WRITE_STREAM = "waymark.write_stream"  # output: null (the value is in the stream)
CLOSE_STREAM = "waymark.close_stream"  # output: null
PATCH_PREFIX = "waymark.patch:"  # + the patch's name; output: true (ctx.patch took the new code)

# Steps that wait for something outside the workflow (a message, an event, another workflow).
WAITS = frozenset({RECV, GET_EVENT, GET_RESULT})
# Steps that only mark a moment: what happened there (a message, an event, a timer set).
MARKERS = {SEND: "message", SET_EVENT: "event", RECV_TIMEOUT: "timer", GET_EVENT_TIMEOUT: "timer"}
# Steps whose output is a time (epoch ms): a wake-up or a give-up time.
TIMERS = frozenset({SLEEP, RECV_TIMEOUT, GET_EVENT_TIMEOUT})

ALL = frozenset({SLEEP, SEND, RECV, RECV_TIMEOUT, SET_EVENT, GET_EVENT, GET_EVENT_TIMEOUT,
                 GET_RESULT, SELECT, SET_ATTRIBUTES, WRITE_STREAM, CLOSE_STREAM})  # fmt: skip


def is_internal(step_name: str) -> bool:
    return step_name in ALL or step_name.startswith(PATCH_PREFIX)


def patch_step(name: str) -> str:
    """The name of the step that marks where ``ctx.patch(name)`` took the patched code."""
    return PATCH_PREFIX + name


def timer_ms(output: str | None) -> int | None:
    """The time (epoch ms) a SLEEP or *_TIMEOUT step recorded; None if unreadable."""
    try:
        value = serialization.loads(output, "a recorded timer")
    except errors.SerializationError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def select_output(index: int) -> dict[str, Any]:
    return {"index": index}


def select_index(value: Any) -> int:
    """The winner's position from a SELECT step's decoded output."""
    return int(value["index"])
