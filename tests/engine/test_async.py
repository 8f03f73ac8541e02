"""Async workflows and steps (both backends): checkpoints, replay, recovery, cancel, deadlines,
children across sync/async, messages, events, select, queues, schedules, and bad use.

Crashes are staged by rewinding finished workflows (as in test_recovery.py); test_crash.py
kills a real process running an async workflow.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

from engine import (
    Client,
    Engine,
    EngineError,
    NonDeterministicWorkflowError,
    Status,
    WorkflowCancelledError,
    WorkflowFailedError,
)
from tests.engine.test_recovery import rewind
from tests.support import wait_until

LONG = 120.0  # a wait that a cancel, a deadline or a message must cut short


def run(coro):
    return asyncio.run(coro)


def gather_app(make_engine, calls: Counter[str]):
    engine = make_engine("gather", application_version="v1")

    @engine.step(name="slow")
    async def slow(x: int) -> int:
        calls["slow"] += 1
        await asyncio.sleep(0.05)
        return x * 10

    @engine.step(name="fast")
    async def fast(x: int) -> int:
        calls["fast"] += 1
        return x + 1

    @engine.step(name="last")
    async def last(x: int) -> int:
        calls["last"] += 1
        return x

    @engine.workflow(name="gatherer")
    async def gatherer(ctx, x):
        a, b = await asyncio.gather(slow(x), fast(x))  # IDs 1 and 2, whatever finishes first
        return await last(a + b)

    return engine, gatherer


def test_gathered_steps_take_ids_at_the_call_and_replay_by_them(make_engine, db) -> None:
    calls: Counter[str] = Counter()
    first, gatherer = gather_app(make_engine, calls)
    first.launch()

    async def main():
        handle = await first.start_workflow_async(gatherer, 2, workflow_id="g-1")
        return await handle.get_result_async(timeout=30)

    assert run(main()) == 23
    # "fast" finished first, but "slow" was called first: it holds step 1.
    assert [s.name for s in first.list_steps("g-1")] == ["slow", "fast", "last"]
    first.shutdown(timeout=5)

    rewind(db, "g-1", keep_steps=2)
    second, _ = gather_app(make_engine, calls)
    second.launch()  # recovered on the engine's own loop thread
    assert second.retrieve_workflow("g-1").get_result(timeout=30) == 23
    assert calls == Counter(slow=1, fast=1, last=2)


def test_a_replay_reaching_another_step_is_a_determinism_error(make_engine, db) -> None:
    def app(second_step: str):
        engine = make_engine("nondet", application_version="v1")

        @engine.step(name="a")
        async def a() -> int:
            return 1

        @engine.step(name=second_step)
        async def b() -> int:
            return 2

        @engine.workflow(name="flip")
        async def flip(ctx):
            await a()
            return await b()

        return engine, flip

    first, flip = app("b")
    first.launch()
    assert first.start_workflow(flip, workflow_id="nd-1").get_result(timeout=30) == 2
    first.shutdown(timeout=5)
    rewind(db, "nd-1", keep_steps=2)
    second, _ = app("c")  # new code calls another step where "b" was recorded
    second.launch()
    with pytest.raises(WorkflowFailedError) as failed:
        second.retrieve_workflow("nd-1").get_result(timeout=30)
    assert failed.value.error_name == NonDeterministicWorkflowError.__name__


def test_started_from_a_loop_it_runs_on_that_loop_else_on_the_engines_loop(engine) -> None:
    seen: dict[str, object] = {}

    @engine.step()
    async def where() -> str:
        return threading.current_thread().name

    @engine.workflow(name="where")
    async def wf(ctx, tag):
        seen[tag] = asyncio.get_running_loop()
        return await where()

    engine.launch()

    async def main():
        handle = await engine.start_workflow_async(wf, "app")
        return asyncio.get_running_loop(), await handle.get_result_async(timeout=30)

    loop, thread_name = run(main())
    assert seen["app"] is loop and thread_name == threading.main_thread().name
    # Started from plain sync code: on the engine's loop thread.
    assert engine.start_workflow(wf, "sync").get_result(timeout=30).startswith("waymark-loop-")
    assert seen["sync"] is not loop


def test_durable_sleep_messages_and_events(engine: Engine) -> None:
    @engine.workflow(name="chat")
    async def chat(ctx, x):
        await ctx.sleep_async(0.05)
        await ctx.set_event_async("ready", x)
        got = await ctx.recv_async("greet", timeout=LONG)
        nothing = await ctx.recv_async("never", timeout=0.05)
        return [got, nothing]

    engine.launch()

    async def main():
        handle = await engine.start_workflow_async(chat, 7, workflow_id="chat-1")
        assert await engine.get_event_async("chat-1", "ready", timeout=30) == 7
        await engine.send_async("chat-1", "hi", "greet")
        return await handle.get_result_async(timeout=30)

    assert run(main()) == ["hi", None]
    names = [s.name for s in engine.list_steps("chat-1")]
    assert names == [
        "waymark.sleep",
        "waymark.set_event",
        "waymark.recv.timeout",
        "waymark.recv",
        "waymark.recv.timeout",
        "waymark.recv",
    ]


def test_send_from_an_async_workflow_is_a_step_and_reaches_a_sync_one(engine: Engine) -> None:
    @engine.workflow(name="listener")
    def listener(ctx):
        return ctx.recv(timeout=LONG)

    @engine.workflow(name="sender")
    async def sender(ctx, to):
        await ctx.send_async(to, {"n": 1})
        return "sent"

    engine.launch()
    receiving = engine.start_workflow(listener, workflow_id="lis-1")
    assert engine.start_workflow(sender, "lis-1", workflow_id="snd-1").get_result(30) == "sent"
    assert receiving.get_result(timeout=30) == {"n": 1}
    assert [s.name for s in engine.list_steps("snd-1")] == ["waymark.send"]


def test_cancel_stops_an_async_workflow_waiting_for_a_message(engine: Engine) -> None:
    @engine.workflow(name="waiter")
    async def waiter(ctx):
        return await ctx.recv_async(timeout=LONG)

    engine.launch()

    async def main():
        handle = await engine.start_workflow_async(waiter, workflow_id="cw-1")
        await asyncio.to_thread(
            wait_until, lambda: engine.list_steps("cw-1"), 30, "the recv's timer"
        )
        engine.cancel_workflow("cw-1")
        with pytest.raises(WorkflowCancelledError):
            await handle.get_result_async(timeout=30)

    run(main())
    assert engine.get_workflow_status("cw-1").status == Status.CANCELLED


def test_a_deadline_cancels_an_async_workflow_while_it_sleeps(engine: Engine) -> None:
    @engine.workflow(name="napper")
    async def napper(ctx):
        await ctx.sleep_async(LONG)

    engine.launch()

    async def main():
        handle = await engine.start_workflow_async(napper, timeout=0.5)
        with pytest.raises(WorkflowCancelledError):
            await handle.get_result_async(timeout=60)

    run(main())


def test_children_across_sync_and_async(engine: Engine) -> None:
    @engine.workflow(name="sync-child")
    def sync_child(ctx, x):
        return ctx.run_step(lambda: x + 1)

    @engine.workflow(name="async-child")
    async def async_child(ctx, x):
        return await ctx.run_step_async(lambda: x * 2)  # a sync fn: runs in a thread

    @engine.workflow(name="async-parent")
    async def async_parent(ctx, x):
        handle = await ctx.start_workflow_async(sync_child, x)
        return await handle.get_result_async()

    @engine.workflow(name="sync-parent")
    def sync_parent(ctx, x):
        return ctx.start_workflow(async_child, x).get_result()

    engine.launch()
    assert engine.start_workflow(async_parent, 1, workflow_id="ap").get_result(30) == 2
    assert [(s.name, s.child_workflow_id) for s in engine.list_steps("ap")] == [
        ("sync-child", "ap-1"),
        ("waymark.get_result", "ap-1"),
    ]
    assert engine.start_workflow(sync_parent, 5, workflow_id="sp").get_result(30) == 10
    assert engine.get_workflow_status("sp-1").parent_workflow_id == "sp"


def test_select_async_records_the_winner_and_a_replay_returns_it(make_engine, db) -> None:
    calls: Counter[str] = Counter()
    gate = {"open": False}

    def app() -> tuple[Engine, object]:
        engine = make_engine("selector", application_version="v1")

        @engine.step(name="quick")
        async def quick() -> str:
            calls["quick"] += 1
            return "quick" if not gate["open"] else "quick-again"

        @engine.step(name="slow")
        async def slow() -> str:
            calls["slow"] += 1
            while not gate["open"]:
                await asyncio.sleep(0.01)
            return "slow"

        @engine.workflow(name="race")
        async def race(ctx):
            return await ctx.select_async([slow(), quick()])

        return engine, race

    first, race = app()
    first.launch()
    assert first.start_workflow(race, workflow_id="sel-1").get_result(timeout=30) == "quick"
    gate["open"] = True  # the loser keeps running, and records its step
    wait_until(lambda: len(first.list_steps("sel-1")) == 3, 30, "the losing step's record")
    assert [s.name for s in first.list_steps("sel-1")] == ["slow", "quick", "waymark.select"]
    first.shutdown(timeout=5)
    # A replay with every step recorded but the final status: the recorded winner returns,
    # even though now "slow" would finish at once.
    rewind(db, "sel-1", keep_steps=3)
    second, _ = app()
    second.launch()
    assert second.retrieve_workflow("sel-1").get_result(timeout=30) == "quick"
    assert calls["quick"] == 1


def test_queued_and_scheduled_async_workflows_run_on_the_engines_loop(engine: Engine) -> None:
    queue = engine.queue("aq", worker_concurrency=4)

    @engine.workflow(name="queued")
    async def queued(ctx, x):
        await asyncio.sleep(0)
        return [x, threading.current_thread().name]

    @engine.workflow(name="ticker", schedule="* * * * * *")
    async def ticker(ctx, tick):
        return tick.isoformat()

    engine.launch()
    handles = [engine.start_workflow(queued, i, queue=queue) for i in range(5)]
    for i, handle in enumerate(handles):
        value, thread_name = handle.get_result(timeout=30)
        assert value == i and thread_name.startswith("waymark-loop-")
    wait_until(
        lambda: engine.list_workflows(name="ticker", status="SUCCESS"), 30, "a scheduled run"
    )


def test_an_async_step_retries_then_succeeds(engine: Engine) -> None:
    attempts: Counter[str] = Counter()

    @engine.step(max_attempts=3, interval_seconds=0.01)
    async def flaky() -> str:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError("try again")
        return "ok"

    @engine.workflow(name="retrier")
    async def retrier(ctx):
        return await flaky()

    engine.launch()
    assert engine.start_workflow(retrier).get_result(timeout=30) == "ok"
    assert attempts["n"] == 3


def test_a_failing_async_step_fails_the_workflow_with_its_error(engine: Engine) -> None:
    @engine.step()
    async def broken() -> None:
        raise ValueError("bad input")

    @engine.workflow(name="breaks")
    async def breaks(ctx):
        await broken()

    engine.launch()
    with pytest.raises(WorkflowFailedError) as failed:
        engine.start_workflow(breaks, workflow_id="br-1").get_result(timeout=30)
    assert failed.value.error_name == "ValueError"
    (step,) = engine.list_steps("br-1")
    assert step.error == {"name": "ValueError", "message": "bad input"}


@pytest.mark.parametrize(
    ("call", "names"),
    [
        ("recv", "recv_async"),
        ("sleep", "sleep_async"),
        ("send", "send_async"),
        ("set_event", "set_event_async"),
        ("run_step", "run_step_async"),
        ("start_workflow", "start_workflow_async"),
        ("sync_step", "run_step_async"),
        ("get_result", "get_result_async"),
    ],
)
def test_a_blocking_call_in_an_async_workflow_names_the_async_one(
    engine: Engine, call: str, names: str
) -> None:
    @engine.step()
    def sync_step() -> int:
        return 1

    @engine.workflow(name="other")
    def other(ctx):
        return 1

    @engine.workflow(name="misuse")
    async def misuse(ctx):
        if call == "sync_step":
            return sync_step()
        if call == "get_result":
            return (await ctx.start_workflow_async(other)).get_result()
        if call == "start_workflow":
            return engine.start_workflow(other)
        if call in ("recv", "sleep"):
            return getattr(ctx, call)(1)
        if call == "run_step":
            return ctx.run_step(sync_step)
        if call == "set_event":
            return ctx.set_event("k", 1)
        return ctx.send("x", 1)

    engine.launch()
    with pytest.raises(WorkflowFailedError) as failed:
        engine.start_workflow(misuse).get_result(timeout=30)
    assert failed.value.error_name == EngineError.__name__
    assert names in failed.value.error_message


def test_an_async_step_called_from_a_sync_workflow_says_how_to_call_it(engine: Engine) -> None:
    @engine.step()
    async def async_step() -> int:
        return 1

    @engine.workflow(name="sync-caller")
    def sync_caller(ctx):
        return async_step()

    engine.launch()
    with pytest.raises(WorkflowFailedError) as failed:
        engine.start_workflow(sync_caller).get_result(timeout=30)
    assert "async def" in failed.value.error_message
    assert "await" in failed.value.error_message


def test_client_async_calls(engine: Engine, db) -> None:
    @engine.workflow(name="echo")
    async def echo(ctx, x):
        await ctx.set_event_async("got", await ctx.recv_async("in", timeout=LONG))
        return x

    engine.launch()

    async def main():
        with Client(db.url, schema=db.schema) as client:
            handle = await client.start_workflow_async("echo", 3, workflow_id="cl-1")
            await client.send_async("cl-1", "ping", "in")
            assert await client.get_event_async("cl-1", "got", timeout=30) == "ping"
            assert await handle.get_result_async(timeout=30) == 3
            assert (await handle.get_status_async()).status == Status.SUCCESS

    run(main())
