"""Cancel, resume, fork, timeouts and durable sleep (both backends)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from engine import (
    Client,
    Engine,
    EngineError,
    Status,
    WorkflowCancelledError,
    WorkflowNotFoundError,
)
from tests.engine.test_recovery import rewind
from tests.support import wait_until


def status_of(engine: Engine, workflow_id: str) -> str:
    status = engine.get_workflow_status(workflow_id)
    assert status is not None
    return status.status


def blocking_app(engine: Engine, calls: Counter[str], gate: threading.Event):
    @engine.step(name="first")
    def first() -> int:
        calls["first"] += 1
        return 1

    @engine.step(name="blocked")
    def blocked() -> int:
        calls["blocked"] += 1
        gate.wait(20)
        return 2

    @engine.step(name="last")
    def last() -> int:
        calls["last"] += 1
        return 3

    @engine.workflow(name="three")
    def three(ctx):
        return first() + blocked() + last()

    return three


def test_cancel_during_a_blocked_step_then_resume(engine: Engine) -> None:
    calls: Counter[str] = Counter()
    gate = threading.Event()
    three = blocking_app(engine, calls, gate)
    engine.launch()
    handle = engine.start_workflow(three, workflow_id="c1")
    wait_until(lambda: calls["blocked"] == 1, what="blocked step running")
    engine.cancel_workflow("c1")
    assert status_of(engine, "c1") == Status.CANCELLED  # durable at once
    gate.set()  # the step in progress completes...
    with pytest.raises(WorkflowCancelledError):
        handle.get_result(timeout=10)
    assert calls["last"] == 0  # ...and nothing after it runs
    assert [s.name for s in engine.list_steps("c1")] == ["first", "blocked"]

    resumed = engine.resume_workflow("c1")
    assert resumed.get_result(timeout=10) == 6
    assert calls == {"first": 1, "blocked": 1, "last": 1}  # nothing re-run
    engine.resume_workflow("c1")  # a second resume is a no-op
    assert status_of(engine, "c1") == Status.SUCCESS
    assert calls["last"] == 1


def test_cancel_unknown_raises_and_cancel_finished_is_a_no_op(engine: Engine) -> None:
    @engine.workflow()
    def done(ctx):
        return "ok"

    engine.launch()
    engine.start_workflow(done, workflow_id="fin").get_result(timeout=10)
    engine.cancel_workflow("fin")
    assert status_of(engine, "fin") == Status.SUCCESS
    with pytest.raises(WorkflowNotFoundError):
        engine.cancel_workflow("missing")
    with pytest.raises(WorkflowNotFoundError):
        engine.resume_workflow("missing")


def test_a_cancel_after_the_last_step_still_wins(engine: Engine) -> None:
    after_last = threading.Event()
    release = threading.Event()

    @engine.workflow()
    def tail(ctx):
        value = ctx.run_step(lambda: 1)
        after_last.set()
        release.wait(10)  # plain code after the last step, before the final write
        return value

    engine.launch()
    handle = engine.start_workflow(tail, workflow_id="tail")
    assert after_last.wait(10)
    engine.cancel_workflow("tail")
    release.set()
    with pytest.raises(WorkflowCancelledError):
        handle.get_result(timeout=10)
    assert status_of(engine, "tail") == Status.CANCELLED


def test_fork_copies_earlier_steps_and_reruns_the_rest(engine: Engine) -> None:
    calls: Counter[str] = Counter()
    gate = threading.Event()
    gate.set()
    three = blocking_app(engine, calls, gate)
    engine.launch()
    assert engine.start_workflow(three, workflow_id="orig").get_result(timeout=10) == 6

    fork = engine.fork_workflow("orig", 3, new_workflow_id="orig-fork")
    assert fork.get_result(timeout=10) == 6
    assert calls == {"first": 1, "blocked": 1, "last": 2}
    status = engine.get_workflow_status("orig-fork")
    assert status is not None and status.forked_from == "orig"
    assert [s.step_id for s in engine.list_steps("orig-fork")] == [1, 2, 3]

    restart = engine.fork_workflow("orig", 1)  # from step 1: a restart
    assert restart.get_result(timeout=10) == 6
    assert calls == {"first": 2, "blocked": 2, "last": 3}
    with pytest.raises(EngineError, match="already taken"):
        engine.fork_workflow("orig", 1, new_workflow_id="orig-fork")
    with pytest.raises(ValueError, match="step number"):
        engine.fork_workflow("orig", 0)
    with pytest.raises(WorkflowNotFoundError):
        engine.fork_workflow("nope", 1)


def test_client_cancel_resume_and_fork_are_carried_out_by_a_worker(engine: Engine, db) -> None:
    calls: Counter[str] = Counter()
    gate = threading.Event()
    three = blocking_app(engine, calls, gate)
    engine.launch()
    handle = engine.start_workflow(three, workflow_id="via-client")
    wait_until(lambda: calls["blocked"] == 1)
    with Client(db.url, schema=db.schema) as client:
        client.cancel_workflow("via-client")
        gate.set()
        with pytest.raises(WorkflowCancelledError):
            handle.get_result(timeout=10)
        # The client executes nothing: it hands the workflow to a worker of its version.
        client.resume_workflow("via-client")
        assert client.retrieve_workflow("via-client").get_result(timeout=10) == 6
        forked = client.fork_workflow("via-client", 2)
        assert forked.get_result(timeout=10) == 6
    assert calls == {"first": 1, "blocked": 2, "last": 2}


def test_resume_revives_a_workflow_set_aside_after_too_many_recoveries(make_engine, db) -> None:
    engine = make_engine("mrae", application_version="v1")

    @engine.workflow(name="mrae", max_recovery_attempts=0)
    def wf(ctx):
        return ctx.run_step(lambda: "revived")

    engine.launch()
    engine.start_workflow(wf, workflow_id="m1").get_result(timeout=10)
    engine.shutdown()
    rewind(db, "m1", keep_steps=0)
    again = make_engine("mrae", application_version="v1")
    again.register_workflow(wf, name="mrae", max_recovery_attempts=0)
    again.launch()
    assert status_of(again, "m1") == Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED
    assert again.resume_workflow("m1").get_result(timeout=10) == "revived"
    status = again.get_workflow_status("m1")
    assert status is not None and status.recovery_attempts == 0


def test_timeout_cancels_at_the_next_step_boundary(engine: Engine) -> None:
    steps: list[int] = []

    @engine.workflow()
    def slow(ctx):
        for i in range(200):
            ctx.run_step(lambda i=i: (time.sleep(0.02), steps.append(i)))
        return "finished"

    engine.launch()
    handle = engine.start_workflow(slow, workflow_id="to", timeout=0.3)
    with pytest.raises(WorkflowCancelledError):
        handle.get_result(timeout=10)
    status = handle.get_status()
    assert status.status == Status.CANCELLED
    assert status.timeout == 0.3
    assert status.deadline is not None
    assert 0 < len(steps) < 200


def test_timeout_wakes_a_sleeping_workflow_to_cancel_it(engine: Engine) -> None:
    @engine.workflow()
    def sleeper(ctx):
        ctx.sleep(60)
        return "woke"

    engine.launch()
    handle = engine.start_workflow(sleeper, workflow_id="sleepy", timeout=0.4)
    with pytest.raises(WorkflowCancelledError):
        handle.get_result(timeout=10)
    assert status_of(engine, "sleepy") == Status.CANCELLED


def test_children_inherit_the_deadline_unless_detached(engine: Engine) -> None:
    @engine.workflow(name="attached")
    def attached(ctx):
        ctx.sleep(60)
        return "attached done"

    @engine.workflow(name="detached")
    def detached(ctx):
        ctx.sleep(0.8)
        return "detached done"

    @engine.workflow(name="parent")
    def parent(ctx):
        ctx.start_workflow(detached, detached=True)
        child = ctx.start_workflow(attached)
        return child.get_result()

    engine.launch()
    handle = engine.start_workflow(parent, workflow_id="p", timeout=0.3)
    with pytest.raises(WorkflowCancelledError):
        handle.get_result(timeout=10)
    wait_until(lambda: status_of(engine, "p-2") == Status.CANCELLED, what="attached cancelled")
    assert engine.retrieve_workflow("p-1").get_result(timeout=10) == "detached done"
    kids = {w.workflow_id: w for w in engine.list_workflows(workflow_id_prefix="p-")}
    assert kids["p-2"].parent_workflow_id == "p" and kids["p-2"].deadline is not None
    assert kids["p-1"].parent_workflow_id == "p" and kids["p-1"].deadline is None


def test_a_recovered_workflow_keeps_its_original_deadline(make_engine, db) -> None:
    first = make_engine("dl", application_version="v1")

    @first.workflow(name="dl")
    def wf(ctx):
        return ctx.run_step(lambda: 1)

    first.launch()
    first.start_workflow(wf, workflow_id="d", timeout=60).get_result(timeout=10)
    first.shutdown()
    rewind(db, "d", keep_steps=0)
    db.raw("UPDATE workflow_status SET workflow_deadline_epoch_ms = 1 WHERE workflow_uuid = 'd'")
    second = make_engine("dl", application_version="v1")
    second.register_workflow(wf, name="dl")
    second.launch()
    with pytest.raises(WorkflowCancelledError):
        second.retrieve_workflow("d").get_result(timeout=10)


def test_short_sleep_and_parked_sleepers_hold_no_threads(make_engine) -> None:
    engine = make_engine("sleepers", max_workflow_threads=4)

    @engine.workflow(name="nap")
    def nap(ctx, seconds):
        ctx.sleep(seconds)
        return ctx.run_step(lambda: "rested")

    engine.launch()
    assert engine.start_workflow(nap, 0.05).get_result(timeout=10) == "rested"
    # Long enough that the first sleepers are still parked when the last park, on a slow machine.
    handles = [engine.start_workflow(nap, 6) for _ in range(100)]
    wait_until(lambda: engine.runtime.parked() == 100, what="all parked")
    assert engine.runtime.threads() <= 4  # 100 sleeping workflows, at most 4 workflow threads
    assert len(engine.list_workflows(status="PENDING", name="nap")) == 100
    assert [h.get_result(timeout=60) for h in handles] == ["rested"] * 100
    steps = engine.list_steps(handles[0].workflow_id)
    assert steps[0].name == "waymark.sleep"
