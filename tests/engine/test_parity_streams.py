"""Issue 15, part 5: streams (both backends)."""

from __future__ import annotations

import threading

import pytest

from engine import Client, Engine, EngineError, WorkflowNotFoundError
from tests.engine.test_recovery import rewind


def test_values_are_read_in_order_live_and_the_reader_ends_on_close(engine: Engine, db) -> None:
    gate = threading.Event()

    @engine.workflow(name="producer")
    def producer(ctx):
        ctx.write_stream("progress", {"done": 1})
        ctx.write_stream("progress", "two")
        ctx.run_step(lambda: gate.wait(60))
        ctx.write_stream("progress", 3)
        ctx.close_stream("progress")
        ctx.write_stream("log", "unclosed")
        return "ok"

    engine.launch()
    handle = engine.start_workflow(producer, workflow_id="s1")
    reader = engine.read_stream("s1", "progress", timeout=60)
    assert next(reader) == {"done": 1}
    assert next(reader) == "two"
    gate.set()  # the next value comes while the reader waits
    assert list(reader) == [3]  # then the close ends it
    assert handle.get_result(timeout=30) == "ok"
    assert list(engine.read_stream("s1", "progress", offset=1)) == ["two", 3]
    assert list(engine.read_stream("s1", "log")) == ["unclosed"]  # final workflow: ends
    with Client(db.url, schema=db.schema) as client:
        assert list(client.read_stream("s1", "progress", offset=2)) == [3]
        assert client.list_streams("s1") == [("log", 1, False), ("progress", 3, True)]
    steps = [s.name for s in engine.list_steps("s1")]
    assert steps.count("waymark.write_stream") == 4 and "waymark.close_stream" in steps


def test_a_reader_times_out_with_nothing_new(engine: Engine) -> None:
    gate = threading.Event()

    @engine.workflow(name="slow_producer")
    def slow_producer(ctx):
        ctx.write_stream("s", 1)
        ctx.run_step(lambda: gate.wait(60))
        return "ok"

    engine.launch()
    engine.start_workflow(slow_producer, workflow_id="s2")
    try:
        reader = engine.read_stream("s2", "s", timeout=0.3)
        assert next(reader) == 1
        with pytest.raises(TimeoutError, match="no new value in stream 's'"):
            next(reader)
    finally:
        gate.set()
    with pytest.raises(WorkflowNotFoundError):
        next(engine.read_stream("nope", "s"))


def test_a_replay_writes_nothing_twice_and_a_fork_copies_the_items_of_copied_steps(
    make_engine, db
) -> None:
    def app() -> Engine:
        engine = make_engine("streams", application_version="v1")

        @engine.workflow(name="writer")
        def writer(ctx):
            ctx.write_stream("out", "a")
            ctx.write_stream("out", "b")
            ctx.write_stream("out", "c")
            ctx.close_stream("out")
            return "ok"

        engine.launch()
        return engine

    first = app()
    first.start_workflow("writer", workflow_id="w1").get_result(timeout=30)
    fork = first.fork_workflow("w1", 3, new_workflow_id="w1-fork")  # steps 1-2 copied
    assert fork.get_result(timeout=30) == "ok"
    assert list(first.read_stream("w1-fork", "out")) == ["a", "b", "c"]  # not a, b, a, b, c
    first.shutdown()
    rewind(db, "w1", keep_steps=2)
    db.raw("DELETE FROM streams WHERE workflow_uuid = %s AND function_id > 2", ("w1",))
    again = app()
    assert again.retrieve_workflow("w1").get_result(timeout=30) == "ok"
    assert list(again.read_stream("w1", "out")) == ["a", "b", "c"]


def test_bad_stream_calls_are_refused(engine: Engine) -> None:
    @engine.workflow(name="bad_writer")
    def bad_writer(ctx):
        problems = []
        for call in (
            lambda: ctx.write_stream(7, "x"),
            lambda: ctx.write_stream("", "x"),
            lambda: ctx.write_stream("k", object()),
        ):
            try:
                call()
            except (TypeError, EngineError) as exc:
                problems.append(type(exc).__name__ + ": " + str(exc)[:60])
        ctx.close_stream("k")
        try:
            ctx.write_stream("k", 1)
        except EngineError as exc:
            problems.append(str(exc))
        return problems

    engine.launch()
    problems = engine.start_workflow(bad_writer, workflow_id="bw").get_result(timeout=30)
    assert problems[0].startswith("TypeError: a stream key must be a non-empty string, got 7")
    assert problems[1].startswith("TypeError: a stream key must be a non-empty string, got ''")
    assert "SerializationError" in problems[2]
    assert "stream 'k' of workflow 'bw' is closed" in problems[3]
    assert [s.name for s in engine.list_steps("bw")] == [
        "waymark.close_stream",
        "waymark.write_stream",
    ]  # fmt: skip  (the refused calls took no step; the write after the close recorded its error)
    with pytest.raises(TypeError, match="stream key"):
        next(engine.read_stream("bw", 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        next(engine.read_stream("bw", "k", offset=-1))
