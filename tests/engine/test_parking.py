"""Waits that hold no thread (both backends): sync workflows parked in recv, get_event and
awaiting a child are woken at once by a local signal, by another process's change (NOTIFY on
Postgres, a poll on SQLite), by a cancel and by a deadline."""

from __future__ import annotations

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
