"""Workflows and steps: results, checkpoints, retries, errors, idempotency (both backends)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter

import pytest

from engine import (
    ConflictingWorkflowError,
    Engine,
    EngineError,
    SerializationError,
    Status,
    StepError,
    WorkflowFailedError,
    WorkflowHandle,
    WorkflowNotFoundError,
)


class AppError(Exception):
    """A user exception whose class a replay can rebuild."""


def test_workflow_runs_its_steps_and_returns(engine: Engine) -> None:
    calls: list[str] = []

    @engine.step()
    def fetch(order_id: int) -> dict[str, int]:
        calls.append("fetch")
        return {"order": order_id, "amount": 40}

    @engine.workflow()
    def checkout(ctx, order_id):
        order = fetch(order_id)
        total = ctx.run_step(lambda: order["amount"] + 2)
        return {"order": order["order"], "total": total}

    engine.launch()
    handle = engine.start_workflow(checkout, 7, workflow_id="order-7")
    assert isinstance(handle, WorkflowHandle)
    assert handle.workflow_id == "order-7"
    assert handle.get_result(timeout=10) == {"order": 7, "total": 42}
    assert calls == ["fetch"]

    status = handle.get_status()
    assert status.status == Status.SUCCESS == "SUCCESS"
    assert status.name == f"{__name__}.test_workflow_runs_its_steps_and_returns.<locals>.checkout"
    assert status.input == 7
    assert status.output == {"order": 7, "total": 42}
    assert status.error is None
    assert status.executor_id == "local"
    assert status.application_version == engine.application_version
    assert status.created_at.tzinfo is not None
    assert status.updated_at >= status.created_at
    assert status.recovery_attempts == 0

    steps = engine.list_steps("order-7")
    assert [(s.step_id, s.output) for s in steps] == [
        (1, {"order": 7, "amount": 40}),
        (2, 42),
    ]
    assert steps[0].name.endswith("fetch")
    assert steps[0].started_at is not None and steps[0].completed_at is not None


def test_workflow_without_input_and_step_outside_workflow(engine: Engine) -> None:
    @engine.step()
    def double(x: int) -> int:
        return x * 2

    @engine.workflow(name="no-input")
    def no_input(ctx):
        return double(21)

    engine.launch()
    assert double(4) == 8  # a plain call outside a workflow
    assert engine.start_workflow("no-input").get_result(timeout=10) == 42


def test_stored_payloads_are_portable_json(engine: Engine, db) -> None:
    @engine.workflow()
    def echo(ctx, value):
        return ctx.run_step(lambda: value)

    engine.launch()
    engine.start_workflow(echo, {"a": [1, "x"]}, workflow_id="p1").get_result(timeout=10)
    ((inputs, output, serialization),) = db.raw(
        "SELECT inputs, output, serialization FROM workflow_status WHERE workflow_uuid = %s",
        ("p1",),
    )
    assert inputs == '{"positionalArgs":[{"a":[1,"x"]}],"namedArgs":{}}'
    assert output == '{"a":[1,"x"]}'
    assert serialization == "portable_json"


def test_step_retries_with_backoff_then_succeeds(engine: Engine) -> None:
    attempts: list[int] = []

    @engine.step(max_attempts=3, interval_seconds=0.01, backoff_rate=2.0)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    @engine.workflow()
    def wf(ctx):
        return flaky()

    engine.launch()
    assert engine.start_workflow(wf).get_result(timeout=10) == "ok"
    assert len(attempts) == 3


def test_step_error_after_last_attempt_propagates_unchanged(engine: Engine) -> None:
    seen: list[BaseException] = []

    @engine.step(max_attempts=2, interval_seconds=0)
    def always_fails() -> None:
        raise AppError("card declined")

    @engine.workflow()
    def wf(ctx):
        try:
            always_fails()
        except AppError as exc:
            seen.append(exc)
            raise

    engine.launch()
    handle = engine.start_workflow(wf, workflow_id="fails")
    with pytest.raises(WorkflowFailedError) as info:
        handle.get_result(timeout=10)
    assert info.value.workflow_id == "fails"
    assert info.value.error_name == "AppError"
    assert info.value.error_message == "card declined"
    assert type(seen[0]) is AppError
    status = handle.get_status()
    assert status.status == Status.ERROR
    assert status.error == {"name": "AppError", "message": "card declined"}
    (step,) = engine.list_steps("fails")
    assert step.error == {"name": "AppError", "message": "card declined"}
    assert step.output is None


def test_workflow_id_is_an_idempotency_key(engine: Engine) -> None:
    runs: list[int] = []

    @engine.workflow()
    def once(ctx, x):
        runs.append(x)
        return ctx.run_step(lambda: x + 1)

    engine.launch()
    first = engine.start_workflow(once, 1, workflow_id="same").get_result(timeout=10)
    again = engine.start_workflow(once, 99, workflow_id="same")
    assert first == again.get_result(timeout=10) == 2
    assert runs == [1]


def test_concurrent_starts_of_one_id_run_the_body_once(engine: Engine) -> None:
    body_runs: list[int] = []
    step_runs: list[int] = []
    lock = threading.Lock()

    @engine.step()
    def side_effect(x: int) -> int:
        with lock:
            step_runs.append(x)
        return x

    @engine.workflow()
    def contended(ctx, x):
        with lock:
            body_runs.append(x)
        return side_effect(x) + side_effect(x + 1)

    engine.launch()
    barrier = threading.Barrier(16)
    results: list[object] = []

    def starter(i: int) -> None:
        barrier.wait()
        handle = engine.start_workflow(contended, 10, workflow_id="contended")
        results.append(handle.get_result(timeout=20))

    threads = [threading.Thread(target=starter, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [21] * 16
    assert body_runs == [10]
    assert sorted(step_runs) == [10, 11]
    assert len(engine.list_steps("contended")) == 2


def test_same_id_under_another_workflow_name_conflicts(engine: Engine) -> None:
    @engine.workflow()
    def first(ctx):
        return 1

    @engine.workflow()
    def second(ctx):
        return 2

    engine.launch()
    engine.start_workflow(first, workflow_id="taken").get_result(timeout=10)
    with pytest.raises(ConflictingWorkflowError, match="already belongs to workflow"):
        engine.start_workflow(second, workflow_id="taken")


def test_non_json_input_is_refused_before_anything_is_written(engine: Engine) -> None:
    @engine.workflow()
    def wf(ctx, x):
        return x

    engine.launch()
    with pytest.raises(SerializationError, match="not JSON-serializable") as info:
        engine.start_workflow(wf, {"s": {1, 2}}, workflow_id="bad-input")
    assert isinstance(info.value, TypeError)
    assert engine.get_workflow_status("bad-input") is None
    assert engine.list_workflows() == []


def test_empty_workflow_id_is_refused(engine: Engine) -> None:
    @engine.workflow()
    def wf(ctx):
        return 1

    engine.launch()
    for bad in ("", "   "):
        with pytest.raises(ValueError, match="non-empty"):
            engine.start_workflow(wf, workflow_id=bad)
    assert engine.list_workflows() == []


def test_non_serializable_step_output_ends_the_workflow_in_error(engine: Engine) -> None:
    @engine.workflow()
    def wf(ctx):
        return ctx.run_step(lambda: object())

    engine.launch()
    handle = engine.start_workflow(wf, workflow_id="bad-step")
    with pytest.raises(WorkflowFailedError) as info:
        handle.get_result(timeout=10)
    assert info.value.error_name == "SerializationError"
    assert (
        "step" in info.value.error_message and "not JSON-serializable" in info.value.error_message
    )
    assert handle.get_status().status == Status.ERROR


def test_non_serializable_workflow_result_ends_in_error(engine: Engine) -> None:
    @engine.workflow()
    def wf(ctx):
        return {"when": threading.Lock()}

    engine.launch()
    handle = engine.start_workflow(wf)
    with pytest.raises(WorkflowFailedError, match="not JSON-serializable"):
        handle.get_result(timeout=10)
    assert handle.get_status().status == Status.ERROR


def test_datetimes_become_iso_strings(engine: Engine) -> None:
    @engine.workflow()
    def wf(ctx, x):
        return ctx.run_step(lambda: dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))

    engine.launch()
    assert engine.start_workflow(wf, None).get_result(timeout=10) == "2026-01-02T03:04:05+00:00"


def test_registration_rules(engine: Engine) -> None:
    @engine.workflow(name="dup")
    def one(ctx):
        return 1

    def two(ctx):
        return 2

    with pytest.raises(EngineError, match="already registered"):
        engine.register_workflow(two, name="dup")
    with pytest.raises(EngineError, match="context as its first parameter"):
        engine.register_workflow(lambda: 1, name="no-ctx")
    version_before = engine.application_version
    assert version_before  # available before launch()
    engine.launch()
    assert engine.application_version == version_before
    with pytest.raises(EngineError, match="before launch"):
        engine.register_workflow(two, name="late")
    with pytest.raises(EngineError, match="not a registered workflow"):
        engine.start_workflow(two)


def test_unknown_workflow_id(engine: Engine) -> None:
    engine.launch()
    assert engine.get_workflow_status("nope") is None
    with pytest.raises(WorkflowNotFoundError):
        engine.retrieve_workflow("nope")
    assert engine.list_steps("nope") == []


def test_get_result_timeout(engine: Engine) -> None:
    release = threading.Event()

    @engine.workflow()
    def slow(ctx):
        return ctx.run_step(lambda: release.wait(10))

    engine.launch()
    handle = engine.start_workflow(slow)
    with pytest.raises(TimeoutError):
        handle.get_result(timeout=0.05)
    release.set()
    assert handle.get_result(timeout=10) is True


def test_list_workflows_filters(make_engine) -> None:
    engine = make_engine("lister")

    @engine.workflow(name="alpha")
    def alpha(ctx, x):
        return x

    @engine.workflow(name="beta")
    def beta(ctx, x):
        if x < 0:
            raise ValueError("negative")
        return x

    engine.launch()
    # created_at has millisecond resolution: space the starts so the order is by creation.
    for i in range(3):
        engine.start_workflow(alpha, i, workflow_id=f"a-{i}").get_result(timeout=10)
        time.sleep(0.002)
    engine.start_workflow(beta, 1, workflow_id="b-ok").get_result(timeout=10)
    time.sleep(0.002)
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(beta, -1, workflow_id="b-bad").get_result(timeout=10)

    ids = lambda found: [w.workflow_id for w in found]  # noqa: E731
    assert ids(engine.list_workflows()) == ["b-bad", "b-ok", "a-2", "a-1", "a-0"]
    assert ids(engine.list_workflows(newest_first=False, limit=2)) == ["a-0", "a-1"]
    assert ids(engine.list_workflows(newest_first=False, limit=2, offset=2)) == ["a-2", "b-ok"]
    assert ids(engine.list_workflows(name="beta")) == ["b-bad", "b-ok"]
    assert ids(engine.list_workflows(status="ERROR")) == ["b-bad"]
    assert ids(engine.list_workflows(status=["ERROR", Status.SUCCESS], name="beta")) == [
        "b-bad",
        "b-ok",
    ]
    assert ids(engine.list_workflows(workflow_id_prefix="a-")) == ["a-2", "a-1", "a-0"]
    assert ids(engine.list_workflows(workflow_id_prefix="a_")) == []  # a prefix, not a pattern
    assert ids(engine.list_workflows(application_version="other")) == []
    assert len(engine.list_workflows(application_version=engine.application_version)) == 5
    assert engine.list_workflows(queue_name="q") == []
    a2 = engine.get_workflow_status("a-2")
    assert a2 is not None
    after = engine.list_workflows(created_after=a2.created_at, newest_first=False)
    assert ids(after) == ["a-2", "b-ok", "b-bad"]
    before = engine.list_workflows(created_before=a2.created_at)
    assert "a-2" not in ids(before)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert engine.list_workflows(created_after=future) == []
    with pytest.raises(ValueError, match="unknown status"):
        engine.list_workflows(status="DONE")
    with pytest.raises(ValueError, match="timezone-aware"):
        engine.list_workflows(created_after=dt.datetime(2026, 1, 1))


def test_many_concurrent_workflows_share_commits(make_engine) -> None:
    engine = make_engine("busy")

    @engine.step()
    def inc(x: int) -> int:
        return x + 1

    @engine.workflow()
    def three(ctx, x):
        return inc(inc(inc(x)))

    engine.launch()
    results: Counter[int] = Counter()
    lock = threading.Lock()

    def client(base: int) -> None:
        for i in range(25):
            value = engine.start_workflow(three, base + i).get_result(timeout=30)
            with lock:
                results[value] += 1

    threads = [threading.Thread(target=client, args=(1000 * t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results.values()) == 200
    assert all(count == 1 for count in results.values())
    assert len(engine.list_workflows(status="SUCCESS", limit=1000)) == 200


def test_step_error_rebuilt_as_step_error_when_class_is_unknown(engine: Engine, db) -> None:
    """A recorded error whose class cannot be rebuilt replays as StepError (see test_recovery)."""
    from engine import serialization

    stored = serialization.encode_error(AppError("x"))
    assert type(serialization.rebuild_error(stored, "t")) is AppError
    corrupt = stored.replace("AppError", "GoneError")
    rebuilt = serialization.rebuild_error(corrupt, "t")
    assert type(rebuilt) is StepError
    assert rebuilt.error_name == "GoneError"


def test_payloads_over_the_size_limit_are_refused_with_the_limit(make_engine) -> None:
    engine = make_engine("sizes", max_payload_bytes=1000)

    @engine.workflow()
    def big_result(ctx, n):
        return ctx.run_step(lambda: "x" * n)

    engine.launch()
    with pytest.raises(SerializationError, match="over the 1,000-byte limit"):
        engine.start_workflow(big_result, "y" * 2000, workflow_id="too-big")
    assert engine.get_workflow_status("too-big") is None  # refused before anything is written
    handle = engine.start_workflow(big_result, 5000)
    with pytest.raises(WorkflowFailedError, match="1,000-byte limit"):
        handle.get_result(timeout=10)
    assert engine.start_workflow(big_result, 10).get_result(timeout=10) == "x" * 10


def test_an_unreachable_database_is_a_clear_error_at_launch() -> None:
    engine = Engine("nowhere", "postgresql://someone:secret@127.0.0.1:1/nodb")
    try:
        with pytest.raises(EngineError, match="cannot reach the system database") as info:
            engine.launch()
        assert "secret" not in str(info.value) and "***" in str(info.value)
    finally:
        engine.shutdown(timeout=1)
    with pytest.raises(ValueError, match="not a valid schema name"):
        Engine("quoted", "postgresql://x@127.0.0.1/db", schema='my"schema')
