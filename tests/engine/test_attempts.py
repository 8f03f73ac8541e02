"""Step attempts and tracebacks (issue #12), on both databases."""

from __future__ import annotations

import pytest

from engine import AttemptInfo, Client, Engine, WorkflowFailedError, attempts


class FlakyError(Exception):
    pass


def test_failed_attempts_are_numbered_from_one_with_errors_and_tracebacks(
    engine: Engine, db
) -> None:
    calls = {"n": 0}

    @engine.step(name="flaky", max_attempts=4, interval_seconds=0.01, backoff_rate=1.0)
    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise FlakyError(f"try {calls['n']}")
        return "ok"

    @engine.step(name="fine")
    def fine() -> int:
        return 1

    @engine.workflow(name="retrying")
    def retrying(ctx):
        return [fine(), flaky()]

    engine.launch()
    assert engine.start_workflow(retrying, workflow_id="r1").get_result(timeout=30) == [1, "ok"]
    found = engine.list_attempts("r1", 2)
    assert [a.attempt for a in found] == [1, 2]
    assert all(isinstance(a, AttemptInfo) for a in found)
    assert [a.error for a in found] == [
        {"name": "FlakyError", "message": "try 1"},
        {"name": "FlakyError", "message": "try 2"},
    ]
    assert all(a.traceback and "FlakyError: try" in a.traceback for a in found)
    assert found[0].traceback is not None and "def flaky" not in found[0].traceback
    assert all(a.started_at <= a.completed_at for a in found)  # type: ignore[operator]
    assert found[0].completed_at <= found[1].started_at  # type: ignore[operator]
    steps = engine.list_steps("r1")
    assert [s.attempts for s in steps] == [1, 3]
    assert [s.traceback for s in steps] == [None, None]  # the step succeeded in the end
    assert engine.list_attempts("r1", 1) == []
    with Client(db.url, schema=db.schema) as client:
        assert [a.attempt for a in client.list_attempts("r1", 2)] == [1, 2]
        assert [s.attempts for s in client.list_steps("r1")] == [1, 3]


def test_a_step_that_fails_every_attempt_and_its_workflow_keep_tracebacks(
    engine: Engine, db
) -> None:
    @engine.step(name="doomed", max_attempts=3, interval_seconds=0.01, backoff_rate=1.0)
    def doomed() -> None:
        raise FlakyError("never")

    @engine.workflow(name="failing")
    def failing(ctx):
        doomed()

    engine.launch()
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(failing, workflow_id="f1").get_result(timeout=30)
    (step,) = engine.list_steps("f1")
    assert step.attempts == 3
    assert step.error == {"name": "FlakyError", "message": "never"}
    assert step.traceback is not None and "FlakyError: never" in step.traceback
    assert [a.attempt for a in engine.list_attempts("f1", 1)] == [1, 2, 3]
    status = engine.get_workflow_status("f1")
    assert status is not None and status.traceback is not None
    assert "FlakyError: never" in status.traceback and "in failing" in status.traceback
    listed = engine.list_workflows(workflow_id_prefix="f1")
    assert listed[0].traceback == status.traceback
    with Client(db.url, schema=db.schema) as client:
        assert client.get_workflow_status("f1").traceback == status.traceback  # type: ignore[union-attr]


def test_no_traceback_without_an_error(engine: Engine) -> None:
    @engine.workflow(name="ok")
    def ok(ctx):
        return 1

    engine.launch()
    engine.start_workflow(ok, workflow_id="ok1").get_result(timeout=30)
    status = engine.get_workflow_status("ok1")
    assert status is not None and status.traceback is None


def test_a_fork_keeps_the_attempts_of_the_steps_it_copies(engine: Engine) -> None:
    calls = {"n": 0}

    @engine.step(name="flaky", max_attempts=3, interval_seconds=0.01, backoff_rate=1.0)
    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise FlakyError("first")
        return 1

    @engine.step(name="after")
    def after() -> int:
        return 2

    @engine.workflow(name="forked")
    def forked(ctx):
        return flaky() + after()

    engine.launch()
    engine.start_workflow(forked, workflow_id="o1").get_result(timeout=30)
    engine.fork_workflow("o1", 2, new_workflow_id="o1-fork").get_result(timeout=30)
    assert [a.attempt for a in engine.list_attempts("o1-fork", 1)] == [1]
    assert [s.attempts for s in engine.list_steps("o1-fork")] == [2, 1]


def test_tracebacks_are_capped_at_64_kb_keeping_the_end() -> None:
    long = "x" * 100_000 + "é" * 10 + "THE END"
    capped = attempts.cap(long)
    assert len(capped.encode()) <= 65_536
    assert len(capped.encode()) > 65_000
    assert capped.endswith("THE END") and capped.startswith("...")
    assert attempts.cap("short") == "short"
    exc = FlakyError("m" * 200_000)
    assert len(attempts.format_traceback(exc).encode()) <= 65_536


def test_a_huge_traceback_is_stored_capped_with_its_end(engine: Engine) -> None:
    @engine.step(name="loud")
    def loud() -> None:
        raise FlakyError("m" * 200_000 + " THE END")

    @engine.workflow(name="loud_wf")
    def loud_wf(ctx):
        loud()

    engine.launch()
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(loud_wf, workflow_id="big1").get_result(timeout=30)
    status = engine.get_workflow_status("big1")
    assert status is not None and status.traceback is not None
    assert len(status.traceback.encode()) <= 65_536
    assert status.traceback.rstrip().endswith("THE END")
    (step,) = engine.list_steps("big1")
    assert step.traceback is not None and len(step.traceback.encode()) <= 65_536
    assert [len(a.traceback.encode()) <= 65_536 for a in engine.list_attempts("big1", 1)] == [True]
