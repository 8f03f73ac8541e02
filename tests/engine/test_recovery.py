"""Recovery and replay: resuming PENDING workflows from their checkpoints (both backends).

A crash is staged by rewinding a finished workflow in the database (status back to PENDING,
later steps deleted), which is exactly the state a killed worker leaves; test_crash.py does the
same with a real SIGKILL.
"""

from __future__ import annotations

from collections import Counter

import pytest

from engine import (
    Engine,
    MaxRecoveryAttemptsExceededError,
    NonDeterministicWorkflowError,
    Status,
    StepError,
    WorkflowFailedError,
)


class PaymentError(Exception):
    pass


def rewind(db, workflow_id: str, keep_steps: int) -> None:
    """Put a finished workflow back in the state a crash after step `keep_steps` leaves."""
    db.raw(
        "UPDATE workflow_status SET status = 'PENDING', output = NULL, error = NULL "
        "WHERE workflow_uuid = %s",
        (workflow_id,),
    )
    db.raw(
        "DELETE FROM operation_outputs WHERE workflow_uuid = %s AND function_id > %s",
        (workflow_id, keep_steps),
    )


def saga_app(make_engine, calls: Counter[str], **engine_kwargs) -> tuple[Engine, object]:
    engine = make_engine("saga", application_version="v1", **engine_kwargs)

    @engine.step(name="reserve")
    def reserve(x: int) -> int:
        calls["reserve"] += 1
        return x + 1

    @engine.step(name="charge")
    def charge(x: int) -> int:
        calls["charge"] += 1
        return x * 10

    @engine.step(name="ship")
    def ship(x: int) -> str:
        calls["ship"] += 1
        return f"shipped {x}"

    @engine.workflow(name="saga")
    def saga(ctx, x):
        return ship(charge(reserve(x)))

    return engine, saga


def test_launch_resumes_pending_workflow_from_last_completed_step(make_engine, db) -> None:
    first_calls: Counter[str] = Counter()
    first, saga = saga_app(make_engine, first_calls)
    first.launch()
    assert first.start_workflow(saga, 4, workflow_id="s1").get_result(timeout=10) == "shipped 50"
    first.shutdown()
    rewind(db, "s1", keep_steps=2)

    calls: Counter[str] = Counter()
    second, _ = saga_app(make_engine, calls)
    second.launch()
    assert second.retrieve_workflow("s1").get_result(timeout=10) == "shipped 50"
    assert calls == {"ship": 1}  # reserve and charge were replayed from their checkpoints
    status = second.get_workflow_status("s1")
    assert status is not None
    assert status.status == Status.SUCCESS
    assert status.recovery_attempts == 1
    assert [s.name for s in second.list_steps("s1")] == ["reserve", "charge", "ship"]


def test_recovery_only_takes_its_own_version_and_executor(make_engine, db) -> None:
    first, saga = saga_app(make_engine, Counter())
    first.launch()
    for wid in ("mine", "old-version", "other-executor"):
        first.start_workflow(saga, 1, workflow_id=wid).get_result(timeout=10)
        rewind(db, wid, keep_steps=1)
    db.raw(
        "UPDATE workflow_status SET application_version = 'v0' WHERE workflow_uuid = 'old-version'"
    )
    db.raw(
        "UPDATE workflow_status SET executor_id = 'elsewhere' "
        "WHERE workflow_uuid = 'other-executor'"
    )

    second, _ = saga_app(make_engine, Counter())
    second.launch()
    assert second.retrieve_workflow("mine").get_result(timeout=10) == "shipped 20"
    for wid in ("old-version", "other-executor"):
        status = second.get_workflow_status(wid)
        assert status is not None and status.status == Status.PENDING, wid

    # A worker of the old version picks up its own.
    old = make_engine("saga", application_version="v0")

    @old.step(name="reserve")
    def reserve_v0(x: int) -> int:
        raise AssertionError("replayed from its checkpoint, never re-run")

    @old.workflow(name="saga")
    def saga_v0(ctx, x):
        return f"v0 done after {reserve_v0(x)}"

    old.launch()
    assert old.retrieve_workflow("old-version").get_result(timeout=10) == "v0 done after 2"


def test_default_version_is_a_hash_of_workflow_source(make_engine) -> None:
    def build(body: str) -> Engine:
        engine = make_engine("hashing")
        scope: dict[str, object] = {}
        exec(f"def wf(ctx):\n    return {body}\n", scope)  # two versions of one workflow
        engine.register_workflow(scope["wf"], name="wf")  # type: ignore[arg-type]
        return engine

    one, same, other = build("1"), build("1"), build("2")
    assert one.application_version == same.application_version
    assert one.application_version != other.application_version


def test_recorded_step_error_is_replayed_as_the_same_class(make_engine, db) -> None:
    def app(calls: Counter[str]) -> tuple[Engine, object]:
        engine = make_engine("errs", application_version="v1")

        @engine.step(name="pay")
        def pay() -> None:
            calls["pay"] += 1
            raise PaymentError("card declined")

        @engine.step(name="compensate")
        def compensate(reason: str) -> str:
            calls["compensate"] += 1
            return f"refunded: {reason}"

        @engine.workflow(name="errs")
        def wf(ctx):
            try:
                pay()
            except PaymentError as exc:  # the same class on the first run and on replay
                return compensate(str(exc))
            return "paid"

        return engine, wf

    first_calls: Counter[str] = Counter()
    first, wf = app(first_calls)
    first.launch()
    assert first.start_workflow(wf, workflow_id="e1").get_result(timeout=10) == (
        "refunded: card declined"
    )
    first.shutdown()
    rewind(db, "e1", keep_steps=1)

    calls: Counter[str] = Counter()
    second, _ = app(calls)
    second.launch()
    assert second.retrieve_workflow("e1").get_result(timeout=10) == "refunded: card declined"
    assert calls == {"compensate": 1}


def test_unrebuildable_step_error_replays_as_step_error(make_engine, db) -> None:
    engine = make_engine("errs2", application_version="v1")
    seen: list[BaseException] = []

    @engine.step(name="boom")
    def boom() -> None:
        raise PaymentError("no")

    @engine.workflow(name="errs2")
    def wf(ctx):
        try:
            boom()
        except Exception as exc:
            seen.append(exc)
        return type(seen[-1]).__name__

    engine.launch()
    assert engine.start_workflow(wf, workflow_id="e2").get_result(timeout=10) == "PaymentError"
    engine.shutdown()
    rewind(db, "e2", keep_steps=1)
    # The class moved away since the error was recorded: the replay cannot rebuild it.
    db.raw(
        "UPDATE operation_outputs SET error = REPLACE(error, 'PaymentError', 'RemovedError') "
        "WHERE workflow_uuid = 'e2'"
    )
    again = make_engine("errs2", application_version="v1")
    again.register_workflow(wf, name="errs2")
    again.launch()
    assert again.retrieve_workflow("e2").get_result(timeout=10) == "StepError"
    assert isinstance(seen[-1], StepError)
    assert "RemovedError: no" in str(seen[-1])


def test_replay_reaching_another_step_is_non_deterministic(make_engine, db) -> None:
    first = make_engine("nd", application_version="v1")

    @first.step(name="a")
    def step_a() -> int:
        return 1

    @first.workflow(name="nd")
    def wf(ctx):
        return step_a() + step_a()

    first.launch()
    first.start_workflow(wf, workflow_id="nd1").get_result(timeout=10)
    first.shutdown()
    rewind(db, "nd1", keep_steps=1)

    second = make_engine("nd", application_version="v1")
    swallowed: list[BaseException] = []

    @second.step(name="b")
    def step_b() -> int:
        return 2

    @second.workflow(name="nd")
    def wf2(ctx):
        try:
            return step_b()
        except Exception as exc:  # even a body that swallows it ends in ERROR
            swallowed.append(exc)
            return "swallowed"

    second.launch()
    with pytest.raises(WorkflowFailedError) as info:
        second.retrieve_workflow("nd1").get_result(timeout=10)
    assert info.value.error_name == "NonDeterministicWorkflowError"
    assert "step 1 was recorded as 'a'" in info.value.error_message
    assert isinstance(swallowed[0], NonDeterministicWorkflowError)


def test_workflow_recovered_too_often_is_set_aside(make_engine, db) -> None:
    engine = make_engine("dead", application_version="v1")

    @engine.workflow(name="dead", max_recovery_attempts=2)
    def wf(ctx):
        return ctx.run_step(lambda: 1)

    engine.launch()
    engine.start_workflow(wf, workflow_id="d1").get_result(timeout=10)
    engine.shutdown()
    rewind(db, "d1", keep_steps=0)
    db.raw("UPDATE workflow_status SET recovery_attempts = 2 WHERE workflow_uuid = 'd1'")

    again = make_engine("dead", application_version="v1")
    again.register_workflow(wf, name="dead", max_recovery_attempts=2)
    again.launch()
    with pytest.raises(MaxRecoveryAttemptsExceededError):
        again.retrieve_workflow("d1").get_result(timeout=10)
    status = again.get_workflow_status("d1")
    assert status is not None
    assert status.status == Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED
    assert status.recovery_attempts == 3


def test_unknown_name_and_corrupt_input_end_in_error_not_a_crash_loop(make_engine, db) -> None:
    engine = make_engine("bad", application_version="v1")

    @engine.workflow(name="known")
    def known(ctx, x):
        return x

    engine.launch()
    for wid in ("unknown-name", "corrupt-input"):
        engine.start_workflow(known, 1, workflow_id=wid).get_result(timeout=10)
        rewind(db, wid, keep_steps=0)
    db.raw("UPDATE workflow_status SET name = 'vanished' WHERE workflow_uuid = 'unknown-name'")
    db.raw("UPDATE workflow_status SET inputs = '{not json' WHERE workflow_uuid = 'corrupt-input'")

    again = make_engine("bad", application_version="v1")
    again.register_workflow(known, name="known")
    again.launch()
    with pytest.raises(
        WorkflowFailedError, match="unknown workflow 'vanished' in this application"
    ):
        again.retrieve_workflow("unknown-name").get_result(timeout=10)
    with pytest.raises(WorkflowFailedError, match="corrupt JSON"):
        again.retrieve_workflow("corrupt-input").get_result(timeout=10)
    # The listing still shows the corrupt row, raw, instead of failing.
    status = again.get_workflow_status("corrupt-input")
    assert status is not None and status.input == "{not json"
