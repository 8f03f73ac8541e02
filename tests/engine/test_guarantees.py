"""Guarantees of API.md that only show in their weaker variants: a checkpoint conflict adopts
the recorded outcome, a recovered sleep or receive waits only for what remained, a queue's
deduplication holds while the holder runs. Each would pass a happy-path test if broken."""

from __future__ import annotations

import threading
import time

import pytest

from engine import QueueDeduplicatedError, Status
from tests.support import wait_until

LONG = 30  # seconds a broken implementation would wait again; the tests allow 15


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def steps(db, workflow_id: str) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    return db.raw(
        "SELECT function_id, function_name, output FROM operation_outputs "
        "WHERE workflow_uuid = %s ORDER BY function_id",
        (workflow_id,),
    )


def record_first(db, workflow_id: str, step_id: int, output: str | None, error: str | None):  # type: ignore[no-untyped-def]
    """Another execution's checkpoint for this step, written while ours is still running."""
    db.raw(
        "INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output, "
        "error, started_at_epoch_ms, completed_at_epoch_ms) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (workflow_id, step_id, "charge", output, error, now_ms(), now_ms()),
    )


@pytest.mark.parametrize("ours", ["value", "error"])
@pytest.mark.parametrize("last", [True, False], ids=["last step", "step before another"])
def test_a_step_whose_checkpoint_conflicts_adopts_the_recorded_outcome(
    engine, db, ours, last
) -> None:
    """The checkpoint is written late (with the final status, or before the next step); the
    body, which went on with its own outcome, is replayed from the records: the result and
    every later step follow the recorded outcome, and the step itself does not run again."""
    ran = []

    @engine.step(name="charge")
    def charge(workflow_id):
        ran.append(workflow_id)
        record_first(db, workflow_id, 1, '"charged by the other execution"', None)
        if ours == "error":
            raise RuntimeError("ours failed")
        return "charged by us"

    @engine.step(name="receipt")
    def receipt(charged):
        return f"receipt: {charged}"

    @engine.workflow(name="pay")
    def pay(ctx):
        try:
            charged = charge(ctx.workflow_id)
        except RuntimeError as exc:
            if last:
                raise
            charged = str(exc)
        return charged if last else receipt(charged)

    engine.launch()
    workflow_id = f"adopt-{ours}-{last}"
    result = engine.start_workflow(pay, workflow_id=workflow_id).get_result(timeout=15)
    recorded = "charged by the other execution"
    assert result == (recorded if last else f"receipt: {recorded}")
    assert ran == [workflow_id]
    assert [s[2] for s in steps(db, workflow_id)] == [
        f'"{recorded}"',
        *([] if last else [f'"receipt: {recorded}"']),
    ]


def test_a_step_starts_only_once_the_step_before_is_committed(engine, db) -> None:
    """A checkpoint written late is still written before anything after it runs: the next
    step's body sees the step before it in the database (read on a connection of its own),
    and the last step is there once the workflow has ended."""
    seen = []

    @engine.step(name="first")
    def first() -> int:
        return 1

    @engine.step(name="second")
    def second(workflow_id: str) -> int:
        seen.append([name for _, name, _ in steps(db, workflow_id)])
        return 2

    @engine.workflow(name="two")
    def two(ctx):
        return first() + second(ctx.workflow_id)

    engine.launch()
    assert engine.start_workflow(two, workflow_id="in-order").get_result(timeout=15) == 3
    assert seen == [["first"]]
    assert steps(db, "in-order") == [(1, "first", "1"), (2, "second", "2")]


def test_a_recovered_sleep_waits_only_for_what_remained(make_engine, db) -> None:
    def build():  # type: ignore[no-untyped-def]
        engine = make_engine("sleepy", executor_id="sleepy-1", application_version="v1")

        @engine.workflow(name="nap")
        def nap(ctx):
            ctx.sleep(LONG)
            return "awake"

        return engine, nap

    first, nap = build()
    first.launch()
    first.start_workflow(nap, workflow_id="nap-1")
    wait_until(lambda: len(steps(db, "nap-1")) == 1, what="the sleep's wake-up time to be recorded")
    first.shutdown(timeout=5)
    # As if the worker died and most of the sleep passed before another one took over.
    wake_at = now_ms() + 500
    db.raw(
        "UPDATE operation_outputs SET output = %s WHERE workflow_uuid = 'nap-1'", (str(wake_at),)
    )
    second, _ = build()
    second.launch()
    assert second.retrieve_workflow("nap-1").get_result(timeout=15) == "awake"
    assert steps(db, "nap-1") == [(1, "waymark.sleep", str(wake_at))]  # not re-recorded
    assert now_ms() >= wake_at  # and not woken early either


@pytest.mark.parametrize("wait", ["recv", "get_event"])
def test_a_recovered_receive_waits_only_for_what_remained(make_engine, db, wait) -> None:
    def build():  # type: ignore[no-untyped-def]
        engine = make_engine("waiter", executor_id="waiter-1", application_version="v1")

        @engine.workflow(name="listen")
        def listen(ctx):
            if wait == "recv":
                return ctx.recv("topic", timeout=LONG)
            return ctx.get_event("nobody", "key", timeout=LONG)

        return engine, listen

    first, listen = build()
    first.launch()
    first.start_workflow(listen, workflow_id="listen-1")
    wait_until(lambda: len(steps(db, "listen-1")) == 1, what="the wait's deadline to be recorded")
    first.shutdown(timeout=5)
    deadline = now_ms() + 500
    db.raw(
        "UPDATE operation_outputs SET output = %s WHERE workflow_uuid = 'listen-1'",
        (str(deadline),),
    )
    second, _ = build()
    second.launch()
    assert second.retrieve_workflow("listen-1").get_result(timeout=15) is None  # timed out
    recorded = steps(db, "listen-1")
    assert recorded[0] == (1, f"waymark.{wait}.timeout", str(deadline))
    assert [r[1] for r in recorded] == [f"waymark.{wait}.timeout", f"waymark.{wait}"]


def test_deduplication_holds_while_the_holder_is_running(engine) -> None:
    gate = threading.Event()
    serial = engine.queue("dedup-q")

    @engine.workflow(name="hold")
    def hold(ctx, x):
        ctx.run_step(lambda: gate.wait(15))
        return x

    engine.launch()
    holder = engine.start_workflow(hold, 1, queue=serial, deduplication_id="user-7")
    wait_until(lambda: holder.get_status().status == Status.PENDING, what="the holder to run")
    with pytest.raises(QueueDeduplicatedError):
        engine.start_workflow(hold, 2, queue=serial, deduplication_id="user-7")
    gate.set()
    assert holder.get_result(timeout=15) == 1
    again = engine.start_workflow(hold, 3, queue=serial, deduplication_id="user-7")
    assert again.get_result(timeout=15) == 3
