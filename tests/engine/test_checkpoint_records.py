"""What a checkpoint holds, and what a replay says when it cannot use one.

Each test pins a detail that only the record shows: when a failed step started, which child a
failed wait was for, which step's value was too large, which record of which workflow is
corrupt, and which steps a non-deterministic replay confused.
"""

from __future__ import annotations

import datetime as dt

import pytest

from engine import Engine, WorkflowFailedError


class DeclinedError(Exception):
    pass


def now_ms() -> dt.datetime:
    """Now, cut to the millisecond the store keeps."""
    at = dt.datetime.now(dt.UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def test_a_failed_step_records_when_it_started_and_what_it_raised(engine: Engine) -> None:
    @engine.step(name="charge")
    def charge() -> None:
        raise DeclinedError("card declined")

    @engine.workflow(name="pay")
    def pay(ctx):
        try:
            charge()
        except DeclinedError as exc:
            return f"caught {exc}"
        return "charged"

    engine.launch()
    before = now_ms()
    assert engine.start_workflow(pay, workflow_id="pay-1").get_result(timeout=10) == (
        "caught card declined"
    )
    (step,) = engine.list_steps("pay-1")
    assert step.name == "charge" and step.output is None
    assert step.error is not None and step.error["name"] == "DeclinedError"
    assert step.error["message"] == "card declined"
    assert step.started_at is not None and step.completed_at is not None
    assert before <= step.started_at <= step.completed_at <= now_ms()


def test_a_failed_child_is_recorded_against_that_child(engine: Engine) -> None:
    @engine.workflow(name="refuses")
    def refuses(ctx):
        raise DeclinedError("no")

    @engine.workflow(name="asks")
    def asks(ctx):
        try:
            ctx.start_workflow(refuses).get_result()
        except WorkflowFailedError as exc:
            return exc.error_name
        return "answered"

    engine.launch()
    assert (
        engine.start_workflow(asks, workflow_id="asks-1").get_result(timeout=10) == "DeclinedError"
    )
    steps = engine.list_steps("asks-1")
    assert [(s.name, s.child_workflow_id, s.error is None) for s in steps] == [
        ("refuses", "asks-1-1", True),
        ("waymark.get_result", "asks-1-1", False),
    ]
    assert steps[1].started_at is not None


def test_a_step_value_over_the_limit_fails_that_step_by_name(make_engine) -> None:
    engine = make_engine("sizes", max_payload_bytes=1000)

    @engine.step(name="render")
    def render(n: int) -> str:
        return "x" * n

    @engine.workflow(name="measure")
    def measure(ctx, n):
        return len(render(n))  # the workflow's own result stays small

    engine.launch()
    assert engine.start_workflow(measure, 10).get_result(timeout=10) == 10
    with pytest.raises(WorkflowFailedError) as info:
        engine.start_workflow(measure, 5000, workflow_id="big-1").get_result(timeout=10)
    assert info.value.error_message.startswith(
        "the result of render (step 1 of workflow 'big-1') is 5,002 bytes, over the "
        "1,000-byte limit"
    )
    assert engine.list_steps("big-1") == []  # nothing of the refused value was stored


@pytest.mark.parametrize("column", ["output", "error"])
def test_a_corrupt_record_names_its_step_and_workflow_on_replay(engine: Engine, db, column) -> None:
    @engine.step(name="first")
    def first() -> int:
        if column == "error":
            raise DeclinedError("recorded as an error")
        return 1

    @engine.workflow(name="two-steps")
    def two_steps(ctx):
        try:
            got = first()
        except DeclinedError:
            got = 0
        return [got, ctx.run_step(lambda: 2)]

    engine.launch()
    expected = [0 if column == "error" else 1, 2]
    assert engine.start_workflow(two_steps, workflow_id="ok-1").get_result(timeout=10) == expected
    db.raw(
        f"UPDATE operation_outputs SET {column} = '{{not json' "
        "WHERE workflow_uuid = 'ok-1' AND function_id = 1"
    )
    fork = engine.fork_workflow("ok-1", 2, new_workflow_id="fork-1")
    with pytest.raises(WorkflowFailedError) as info:
        fork.get_result(timeout=10)
    assert info.value.error_message.startswith(
        "the recorded outcome of step 1 of workflow 'fork-1' holds corrupt JSON"
    )


def test_a_non_deterministic_replay_names_both_steps_and_the_workflow(engine: Engine) -> None:
    reached = {"name": "first"}

    @engine.workflow(name="drifts")
    def drifts(ctx):
        ctx.run_step(engine.step(name=reached["name"])(lambda: 1))
        return ctx.run_step(lambda: 2)

    engine.launch()
    assert engine.start_workflow(drifts, workflow_id="nd-1").get_result(timeout=10) == 2
    reached["name"] = "renamed"
    with pytest.raises(WorkflowFailedError) as info:
        engine.fork_workflow("nd-1", 2, new_workflow_id="nd-2").get_result(timeout=10)
    assert info.value.error_name == "NonDeterministicWorkflowError"
    assert info.value.error_message.startswith(
        "workflow 'nd-2' is not deterministic: step 1 was recorded as 'first' but the replay "
        "reached 'renamed'"
    )
