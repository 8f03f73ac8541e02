"""The checkpoints of one execution: step IDs, replay of recorded steps, and recording new ones.

Every durable operation takes the next step ID, in call order, on the workflow's own thread:
on a replay the same calls reach the same IDs and find their records. Every write reports
whether the workflow was cancelled or taken from this executor meanwhile; the execution then
stops at that step boundary (``Interrupted`` / ``Fenced``).

A step run on the workflow's thread has its checkpoint written when the workflow next does
anything durable (the next step, a sleep, a send, ...: ``take`` writes it first and waits for
its commit) or, when the workflow ends first, in the same transaction as its final status
(``write_end``). So no step's effects ever start before the checkpoint of the step before is
committed, and a crash loses at most the step in flight, as before; what the deferral saves is
a commit of its own for the last step: a 3-step workflow commits four times, not five.
"""

from __future__ import annotations

import threading
from typing import Any

from engine import clock, errors, serialization
from engine.records import Status
from engine.store import Store, records


class Interrupted(BaseException):
    """Stops a workflow body (cancelled, timed out, taken over, or the engine shutting down).

    A ``BaseException`` so that a workflow's ``except Exception`` cannot swallow it.
    """

    def __init__(self, status: str | None) -> None:
        super().__init__(status)
        self.status = status  # the status the row holds now; None: shutdown, left PENDING


class Fenced(Interrupted):
    """This execution lost its workflow: the executor was declared dead (a long pause, a lost
    network) and the workflow handed to another, which runs it now. It stops at this step
    boundary and writes nothing more: no cancel, no finish; the new owner carries on."""

    def __init__(self, owner: str | None) -> None:
        super().__init__(None)
        self.owner = owner


class Replay(Interrupted):
    """Another execution recorded a step this one ran too (a takeover race), and this one still
    owns the workflow; but its body went on with its own outcome of that step, written late.
    It starts over from the records, so everything after the step follows the recorded one."""

    def __init__(self, step_id: int) -> None:
        super().__init__(None)
        self.step_id = step_id


class Checkpoints:
    def __init__(
        self,
        store: Store,
        executor_id: str,
        workflow_id: str,
        recorded: dict[int, records.StepRow] | None,
        max_payload_bytes: int,
    ) -> None:
        self._store = store
        self._executor_id = executor_id
        self._workflow_id = workflow_id
        # Steps recorded by earlier executions, by step ID; None on a first execution, where
        # there is nothing to read back (no round trip per step to look for a checkpoint).
        self._recorded = recorded
        self._max_payload_bytes = max_payload_bytes
        self._next_step = 0
        self._thread = threading.current_thread()
        # A determinism violation ends the workflow in ERROR even if the body catches it.
        self.fatal: errors.NonDeterministicWorkflowError | None = None
        # The last step's checkpoint, not written yet (see the module's docstring).
        self._deferred: records.NewStep | None = None

    def take(self, name: str) -> tuple[int, records.StepRow | None]:
        """The next step ID, and its record if an earlier execution made one."""
        if threading.current_thread() is not self._thread:
            raise errors.EngineError(
                f"workflow {self._workflow_id!r}: durable operations (steps, sleep, send, ...) "
                "must be called from the workflow's own thread, not from inside ctx.go"
            )
        self.flush()
        self._next_step += 1
        step_id = self._next_step
        row = self._recorded.get(step_id) if self._recorded is not None else None
        if row is not None and row.name != name:
            self.fatal = errors.NonDeterministicWorkflowError(
                self._workflow_id, step_id, row.name, name
            )
            raise self.fatal
        return step_id, row

    def peek(self) -> records.StepRow | None:
        """The record an earlier execution made at the next step ID, without taking the ID."""
        if self._recorded is None:
            return None
        return self._recorded.get(self._next_step + 1)

    def replay(self, step_id: int, row: records.StepRow) -> Any:
        """A recorded step's value, or its recorded error raised."""
        what = f"the recorded outcome of step {step_id} of workflow {self._workflow_id!r}"
        if row.error is not None:
            raise serialization.rebuild_error(row.error, what)
        return serialization.loads(row.output, what)

    def record(
        self,
        step_id: int,
        name: str,
        output: str | None,
        error: str | None,
        started: int,
        child_workflow_id: str | None = None,
        *,
        defer: bool = False,
    ) -> tuple[bool, Any]:
        """Checkpoint a step; (True, outcome) when another execution's record was adopted.
        ``defer``: written later, by the next durable operation or the final write."""
        if defer:  # the step's take wrote the one before: at most one checkpoint waits
            self._deferred = records.NewStep(
                self._workflow_id, step_id, name, output, error, started, None, clock.now_ms()
            )
            return False, None
        step = records.NewStep(
            self._workflow_id, step_id, name, output, error, started, child_workflow_id
        )
        return self.after_record(step_id, self._store.record_step(step, self._executor_id))

    def flush(self) -> None:
        """Write the deferred checkpoint, if any, and wait for its commit."""
        step, self._deferred = self._deferred, None
        if step is None:
            return
        adopted, _ = self.after_record(
            step.step_id, self._store.record_step(step, self._executor_id)
        )
        if adopted:
            raise Replay(step.step_id)

    def settle(self) -> None:
        """On a stop: write the deferred checkpoint if the workflow can still take it (a step
        that finished before a shutdown is not run again on recovery)."""
        try:
            self.flush()
        except Interrupted:
            pass  # stopping anyway

    def write_end(
        self, status: str, output: str | None, error: str | None, traceback: str | None
    ) -> records.Outcome | None:
        """Write the final status, with the deferred checkpoint in the same transaction; None
        when it was not written (no longer PENDING, or no longer this executor's)."""
        store, step, self._deferred = self._store, self._deferred, None
        if step is None:
            return store.finish_workflow(
                self._workflow_id, status, self._executor_id, output, error, traceback
            )
        outcome, written = store.finish_after_step(
            step, status, self._executor_id, output, error, traceback
        )
        if not outcome.recorded:  # the final status was not written either
            self.after_record(step.step_id, outcome)  # Fenced if the other execution owns it
            raise Replay(step.step_id)
        return written

    def after_record(self, step_id: int, outcome: records.StepOutcome) -> tuple[bool, Any]:
        """Stop here if the workflow was taken from us or cancelled; else go on, adopting the
        step's record if another execution made it first."""
        if not outcome.recorded:
            # Another execution of this workflow recorded the step first: adopt its outcome,
            # unless that execution is the workflow's new owner (then we stop: running on
            # would run every later step twice).
            found = self._store.get_step(self._workflow_id, step_id)
            if found is None:
                raise errors.EngineError(
                    f"step {step_id} of workflow {self._workflow_id!r} conflicted on insert "
                    "but has no record; was the workflow deleted while it ran?"
                )
            row, owner = found
            if owner != self._executor_id:
                raise Fenced(owner)
            return True, self.replay(step_id, row)
        if not outcome.owned:
            raise Fenced(None)
        if outcome.status != Status.PENDING:
            raise Interrupted(outcome.status)
        return False, None

    def record_value(
        self,
        step_id: int,
        name: str,
        value: Any,
        started: int,
        child_workflow_id: str | None = None,
        *,
        defer: bool = False,
    ) -> Any:
        """Checkpoint a step's value; returns it as a replay would (its JSON form)."""
        what = f"the result of {name} (step {step_id} of workflow {self._workflow_id!r})"
        output = serialization.dumps(value, what, self._max_payload_bytes)
        adopted, recorded = self.record(
            step_id, name, output, None, started, child_workflow_id, defer=defer
        )
        return recorded if adopted else serialization.loads(output, what)

    def record_error(
        self,
        step_id: int,
        name: str,
        exc: BaseException,
        started: int,
        child_workflow_id: str | None = None,
        *,
        defer: bool = False,
    ) -> tuple[bool, Any]:
        error = serialization.encode_error(exc)
        return self.record(step_id, name, None, error, started, child_workflow_id, defer=defer)
