"""Resume keeps a workflow on its own queue; fork takes a queue and a new input (issue #12)."""

from __future__ import annotations

import threading

import pytest

from engine import Client, Engine, SerializationError, Status, WorkflowNotFoundError
from engine.queues import INTERNAL_QUEUE
from tests.support import wait_until


def queued_app(engine: Engine, gate: threading.Event, ran: list[str]):
    @engine.step(name="hold")
    def hold(tag: str) -> str:
        ran.append(tag)
        gate.wait(30)
        return tag

    @engine.workflow(name="held")
    def held(ctx, tag: str) -> str:
        return hold(tag)

    return held


def status_of(engine: Engine | Client, workflow_id: str):
    status = engine.get_workflow_status(workflow_id)
    assert status is not None
    return status


def test_resume_puts_a_queued_workflow_back_on_its_own_queue_under_its_limits(
    engine: Engine,
) -> None:
    gate, ran = threading.Event(), []
    held = queued_app(engine, gate, ran)
    serial = engine.queue("serial", concurrency=1)
    engine.launch()
    try:
        first = engine.start_workflow(held, "a", workflow_id="qa", queue=serial)
        wait_until(lambda: ran == ["a"], what="the first workflow holds the queue's one slot")
        engine.start_workflow(held, "b", workflow_id="qb", queue=serial)
        engine.cancel_workflow("qb")  # cancelled while it waited
        assert status_of(engine, "qb").status == Status.CANCELLED
        engine.resume_workflow("qb")
        # Back on its queue, behind the running one (concurrency 1): not started here.
        resumed = status_of(engine, "qb")
        assert resumed.status == Status.ENQUEUED
        assert resumed.queue_name == "serial"
        assert ran == ["a"]
    finally:
        gate.set()
    assert first.get_result(timeout=30) == "a"
    assert engine.retrieve_workflow("qb").get_result(timeout=30) == "b"
    assert status_of(engine, "qb").queue_name == "serial"


def test_a_client_resumes_on_the_own_queue_or_the_one_named(engine: Engine, db) -> None:
    gate, ran = threading.Event(), []
    held = queued_app(engine, gate, ran)
    engine.queue("serial", concurrency=1)
    engine.queue("other")
    gate.set()
    with Client(db.url, schema=db.schema) as client:
        # Not launched: nothing claims, so the rows show exactly what resume wrote.
        engine.start_workflow(held, "c", workflow_id="qc", queue="serial")
        engine.start_workflow(held, "d", workflow_id="qd", queue="serial")
        client.cancel_workflow("qc")
        client.cancel_workflow("qd")
        client.resume_workflow("qc")
        client.resume_workflow("qd", queue="other")
        assert status_of(client, "qc").queue_name == "serial"
        assert status_of(client, "qc").status == Status.ENQUEUED
        assert status_of(client, "qd").queue_name == "other"
        with pytest.raises(WorkflowNotFoundError):
            client.resume_workflow("missing", queue="other")


def test_resume_of_a_workflow_without_a_queue_uses_the_internal_queue(engine: Engine, db) -> None:
    gate, ran = threading.Event(), []
    held = queued_app(engine, gate, ran)
    engine.launch()
    handle = engine.start_workflow(held, "e", workflow_id="qe")
    wait_until(lambda: ran == ["e"], what="the workflow runs")
    engine.cancel_workflow("qe")
    with Client(db.url, schema=db.schema) as client:
        client.resume_workflow("qe")
        assert status_of(client, "qe").queue_name in (INTERNAL_QUEUE, None)
    gate.set()
    assert handle.get_result(timeout=30) == "e"


def input_app(engine: Engine, calls: list[str]):
    @engine.step(name="first")
    def first(x: int) -> int:
        calls.append(f"first {x}")
        return x

    @engine.step(name="second")
    def second(x: int) -> int:
        calls.append(f"second {x}")
        return x * 10

    @engine.workflow(name="two")
    def two(ctx, x: int) -> list[int]:
        return [first(x), second(x)]

    return two


def test_fork_with_a_new_input_copies_the_earlier_steps_and_runs_on_with_it(
    engine: Engine,
) -> None:
    calls: list[str] = []
    two = input_app(engine, calls)
    engine.launch()
    assert engine.start_workflow(two, 1, workflow_id="in1").get_result(timeout=30) == [1, 10]
    fork = engine.fork_workflow("in1", 2, new_workflow_id="in1-f", input=5)
    assert fork.get_result(timeout=30) == [1, 50]  # step 1 copied, step 2 ran with 5
    assert calls == ["first 1", "second 1", "second 5"]
    forked = status_of(engine, "in1-f")
    assert forked.input == 5 and forked.forked_from == "in1"
    # Without input= the fork keeps the original's input.
    assert engine.fork_workflow("in1", 2, new_workflow_id="in1-g").get_result(timeout=30) == [
        1,
        10,
    ]
    assert status_of(engine, "in1-g").input == 1


def test_fork_refuses_an_input_that_is_not_json_before_writing(engine: Engine) -> None:
    calls: list[str] = []
    two = input_app(engine, calls)
    engine.launch()
    engine.start_workflow(two, 1, workflow_id="in2").get_result(timeout=30)
    with pytest.raises(SerializationError):
        engine.fork_workflow("in2", 1, new_workflow_id="in2-f", input=object())
    assert engine.get_workflow_status("in2-f") is None


def test_fork_onto_a_queue_waits_there(engine: Engine, db) -> None:
    calls: list[str] = []
    two = input_app(engine, calls)
    engine.queue("forks")
    engine.launch()
    engine.start_workflow(two, 2, workflow_id="in3").get_result(timeout=30)
    fork = engine.fork_workflow("in3", 1, new_workflow_id="in3-f", queue="forks", input=3)
    assert status_of(engine, "in3-f").queue_name == "forks"
    assert fork.get_result(timeout=30) == [3, 30]
    with Client(db.url, schema=db.schema) as client:
        client.fork_workflow("in3", 2, new_workflow_id="in3-c", queue="forks", input=4)
        assert status_of(client, "in3-c").queue_name == "forks"
    assert engine.retrieve_workflow("in3-c").get_result(timeout=30) == [2, 40]
