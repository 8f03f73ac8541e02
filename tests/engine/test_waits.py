"""What a PENDING workflow waits on is recorded when it starts waiting, cleared when it ends."""

from __future__ import annotations

import threading

from engine import Engine, waits
from tests.support import wait_until


def recorded_wait(db, workflow_id: str) -> str | None:
    rows = db.raw("SELECT waiting FROM workflow_status WHERE workflow_uuid = %s", (workflow_id,))
    return rows[0][0] if rows else None


def wait_of(db, workflow_id: str) -> waits.Wait:
    found: list[waits.Wait] = []

    def recorded() -> bool:
        wait = waits.decode(recorded_wait(db, workflow_id))
        if wait is not None:
            found.append(wait)
        return wait is not None

    wait_until(recorded, what=f"the wait of {workflow_id} recorded")
    return found[-1]


def test_a_message_wait_records_its_topic_and_timeout_then_clears(engine: Engine, db) -> None:
    @engine.workflow(name="receiver")
    def receiver(ctx):
        return ctx.recv(topic="orders", timeout=60)

    engine.launch()
    handle = engine.start_workflow(receiver, workflow_id="w-msg")
    wait = wait_of(db, "w-msg")
    assert wait.kind == waits.MESSAGE and wait.topic == "orders"
    assert wait.step == 2  # step 1 records the durable timeout, step 2 the message
    assert wait.until_ms is not None and wait.until_ms - wait.since_ms > 50_000
    engine.send("w-msg", "hello", topic="orders")
    assert handle.get_result(timeout=30) == "hello"
    assert recorded_wait(db, "w-msg") is None


def test_an_event_wait_records_the_key_and_the_workflow(engine: Engine, db) -> None:
    @engine.workflow(name="publisher")
    def publisher(ctx):
        ctx.set_event("ready", 7)

    @engine.workflow(name="listener")
    def listener(ctx):
        return ctx.get_event("w-pub", "ready", timeout=60)

    engine.launch()
    handle = engine.start_workflow(listener, workflow_id="w-evt")
    wait = wait_of(db, "w-evt")
    assert (wait.kind, wait.key, wait.workflow_id) == (waits.EVENT, "ready", "w-pub")
    engine.start_workflow(publisher, workflow_id="w-pub").get_result(timeout=30)
    assert handle.get_result(timeout=30) == 7
    assert recorded_wait(db, "w-evt") is None


def test_a_child_wait_names_the_child(engine: Engine, db) -> None:
    gate = threading.Event()

    @engine.step(name="hold")
    def hold() -> int:
        gate.wait(30)
        return 1

    @engine.workflow(name="kid")
    def kid(ctx):
        return hold()

    @engine.workflow(name="parent")
    def parent(ctx):
        return ctx.start_workflow(kid, workflow_id="w-kid").get_result()

    engine.launch()
    handle = engine.start_workflow(parent, workflow_id="w-parent")
    try:
        wait = wait_of(db, "w-parent")
        assert (wait.kind, wait.workflow_id, wait.step) == (waits.CHILD, "w-kid", 2)
    finally:
        gate.set()
    assert handle.get_result(timeout=30) == 1
    assert recorded_wait(db, "w-parent") is None


def test_a_parked_sleep_records_its_wake_up_time(engine: Engine, db) -> None:
    @engine.workflow(name="sleeper")
    def sleeper(ctx):
        ctx.sleep(600)

    engine.launch()
    engine.start_workflow(sleeper, workflow_id="w-sleep")
    wait = wait_of(db, "w-sleep")
    assert wait.kind == waits.SLEEP and wait.step == 2  # over once step 2 is recorded
    assert wait.until_ms is not None and wait.until_ms - wait.since_ms > 590_000
    assert waits.is_current(wait, 1, wait.since_ms)
    assert not waits.is_current(wait, 2, wait.since_ms)
    assert not waits.is_current(wait, 1, wait.until_ms)
    engine.cancel_workflow("w-sleep")


def test_no_wait_is_recorded_when_nothing_had_to_be_waited_for(engine: Engine, db) -> None:
    @engine.workflow(name="quick")
    def quick(ctx):
        ctx.send(ctx.workflow_id, "self", topic="t")
        return ctx.recv(topic="t", timeout=60)

    engine.launch()
    assert engine.start_workflow(quick, workflow_id="w-quick").get_result(timeout=30) == "self"
    assert recorded_wait(db, "w-quick") is None


def test_unreadable_wait_records_decode_to_none() -> None:
    assert waits.decode(None) is None
    assert waits.decode("not json") is None
    assert waits.decode('{"kind": "nap", "step": 1, "since": 1}') is None
    wait = waits.new(waits.MESSAGE, 3, topic="t", until_ms=5)
    assert waits.decode(wait.encode()) == wait
