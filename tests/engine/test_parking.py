"""Waits that hold no thread (both backends): sync workflows parked in recv, get_event and
awaiting a child are woken at once by a local signal, by another process's change (NOTIFY on
Postgres, a poll on SQLite), by a cancel and by a deadline."""

from __future__ import annotations

import threading

import pytest

from engine import Client, Engine, Status, WorkflowCancelledError
from tests.support import wait_until

LONG = 300.0


def test_many_sync_receivers_park_without_threads_and_all_wake(make_engine) -> None:
    engine = make_engine("parkers", max_workflow_threads=2)
    n = 40

    @engine.workflow(name="receiver")
    def receiver(ctx, i):
        return [i, ctx.recv("go", timeout=LONG)]

    engine.launch()
    handles = [engine.start_workflow(receiver, i) for i in range(n)]
    wait_until(lambda: engine.runtime.parked() == n, 60, "every receiver parked")
    assert engine.runtime.threads() <= 2  # forty waits, no thread each
    for handle in handles:
        engine.send(handle.workflow_id, "x", "go")
    for i, handle in enumerate(handles):
        assert handle.get_result(timeout=60) == [i, "x"]


def test_parked_get_event_and_child_await_wake_when_it_happens(engine: Engine) -> None:
    @engine.workflow(name="slow-child")
    def slow_child(ctx):
        return ctx.recv("release", timeout=LONG)

    @engine.workflow(name="publisher")
    def publisher(ctx):
        ctx.set_event("ready", ctx.recv("publish", timeout=LONG))

    @engine.workflow(name="watcher")
    def watcher(ctx):
        child = ctx.start_workflow(slow_child, workflow_id="kid")
        seen = ctx.get_event("pub", "ready", timeout=LONG)
        return [seen, child.get_result()]

    engine.launch()
    handle = engine.start_workflow(watcher, workflow_id="watch")
    engine.start_workflow(publisher, workflow_id="pub")
    wait_until(lambda: engine.runtime.parked() == 3, 60, "all three parked")
    engine.send("pub", "news", "publish")
    wait_until(lambda: len(engine.list_steps("watch")) == 3, 60, "the event seen")
    engine.send("kid", "done", "release")
    assert handle.get_result(timeout=60) == ["news", "done"]
    names = [s.name for s in engine.list_steps("watch")]
    assert names.count("waymark.get_result") == 1 and names.count("waymark.get_event") == 1


def test_a_message_from_another_process_wakes_a_parked_receiver(engine: Engine, db) -> None:
    @engine.workflow(name="remote")
    def remote(ctx):
        return ctx.recv(timeout=LONG)

    engine.launch()
    handle = engine.start_workflow(remote, workflow_id="remote-1")
    wait_until(lambda: engine.runtime.parked() == 1, 60, "the receiver parked")
    with Client(db.url, schema=db.schema) as client:  # its own signals: like another process
        client.send("remote-1", "hello")
    assert handle.get_result(timeout=60) == "hello"


@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_a_parked_receiver_is_cancelled_and_timed_out(engine: Engine, how: str) -> None:
    @engine.workflow(name="stuck")
    def stuck(ctx):
        return ctx.recv(timeout=LONG)

    engine.launch()
    handle = engine.start_workflow(stuck, timeout=None if how == "cancel" else 3.0)
    if how == "cancel":
        wait_until(lambda: engine.runtime.parked() == 1, 60, "the receiver parked")
        engine.cancel_workflow(handle.workflow_id)
    with pytest.raises(WorkflowCancelledError):
        handle.get_result(timeout=60)
    assert engine.get_workflow_status(handle.workflow_id).status == Status.CANCELLED


def test_a_wake_up_racing_the_cancel_of_a_parked_workflow_ends_it_once(
    make_engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The cancel ends a parked run itself; a wake-up that arrives meanwhile (its stop key
    fired, by NOTIFY on Postgres) ends it too. Whichever comes second must do nothing: one
    finish line, one count in the metrics, the outcome that awaiters already have."""
    import logging

    from engine import signals

    engine = make_engine("race", max_workflow_threads=1)  # one thread: wake-ups queue behind
    entered, release = threading.Event(), threading.Event()

    @engine.workflow(name="stuck")
    def stuck(ctx):
        return ctx.recv(timeout=LONG)

    @engine.workflow(name="blocker")
    def blocker(ctx):
        return ctx.run_step(lambda: entered.set() or release.wait(60))

    engine.launch()
    handle = engine.start_workflow(stuck, workflow_id="race-1")
    wait_until(lambda: engine.runtime.parked() == 1, 60, "the receiver parked")
    engine.start_workflow(blocker)
    assert entered.wait(60)  # the only thread is taken: a wake-up waits for it
    store = engine._parts.store
    read_outcome = store.get_workflow_outcome
    raced: list[str] = []

    def wake_first(workflow_id: str):  # type: ignore[no-untyped-def]
        # The cancel reads the outcome to end the parked run: let the wake-up end it first.
        if threading.current_thread() is threading.main_thread() and not raced:
            raced.append(workflow_id)
            engine._parts.wakeups.fire(signals.stop_key(workflow_id))
            release.set()
            wait_until(lambda: engine.runtime.active() == 0, 60, "the wake-up to end the run")
        return read_outcome(workflow_id)

    monkeypatch.setattr(store, "get_workflow_outcome", wake_first)
    caplog.set_level(logging.INFO, logger="waymark")
    engine.cancel_workflow("race-1")
    assert raced == ["race-1"]
    with pytest.raises(WorkflowCancelledError):
        handle.get_result(timeout=60)
    finished = [
        r.getMessage()
        for r in caplog.records
        if getattr(r, "action", None) == "workflow.finish" and r.workflow_id == "race-1"
    ]
    assert finished == ["workflow race-1 finished: CANCELLED"]
