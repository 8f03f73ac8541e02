"""The writes of ``set_attributes`` and of streams, once their step ID is taken: one definition
for sync workflows (on their thread) and async ones (on an I/O thread, awaited).

Each is one transaction with the step that marks it, so a replay writes nothing again.
"""

from __future__ import annotations

from engine import clock, errors, operations
from engine import signals as keys
from engine.checkpoints import Checkpoints
from engine.store import Store, records
from engine.wakeups import Wakeups


def set_attributes(
    store: Store,
    steps: Checkpoints,
    executor_id: str,
    workflow_id: str,
    step_id: int,
    text: str | None,
) -> None:
    """Merge the encoded attributes ``text`` (None: an empty mapping, only the step marks the
    call) into the workflow's, with its step."""
    step = records.NewStep(
        workflow_id, step_id, operations.SET_ATTRIBUTES, "null", None, clock.now_ms()
    )
    if text is None:
        steps.after_record(step_id, store.record_step(step, executor_id))
        return
    steps.after_record(step_id, store.set_attributes(step, text, executor_id))


def write_stream(
    store: Store,
    wakeups: Wakeups,
    steps: Checkpoints,
    executor_id: str,
    workflow_id: str,
    step_id: int,
    key: str,
    text: str | None,
    closed: bool,
) -> None:
    """Append ``text`` to stream ``key`` (or close it), with its step; a write after the close
    records the error as the step's and raises it."""
    name = operations.CLOSE_STREAM if closed else operations.WRITE_STREAM
    if store.streams.stream_closed(workflow_id, key):
        exc = errors.EngineError(
            f"stream {key!r} of workflow {workflow_id!r} is closed; write to another "
            "key, or close it only after its last value"
        )
        steps.record_error(step_id, name, exc, clock.now_ms())
        raise exc
    step = records.NewStep(workflow_id, step_id, name, "null", None, clock.now_ms())
    outcome = store.streams.write_stream(step, key, text, closed, executor_id)
    wakeups.fire(keys.stream_key(workflow_id, key))
    steps.after_record(step_id, outcome)
