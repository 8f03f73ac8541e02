"""Child workflows, ctx.go / ctx.select, messages and events (both backends)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from engine import Engine, EngineError, WorkflowFailedError, WorkflowNotFoundError
from tests.engine.test_recovery import rewind
from tests.support import wait_until


def test_child_launch_and_result_are_checkpointed(make_engine, db) -> None:
    calls: Counter[str] = Counter()

    def app() -> tuple[Engine, object]:
        engine = make_engine("family", application_version="v1")

        @engine.workflow(name="child")
        def child(ctx, x):
            calls["child"] += 1
            return ctx.run_step(lambda: x * 2)

        @engine.workflow(name="parent")
        def parent(ctx, x):
            handle = ctx.start_workflow(child, x)
            doubled = handle.get_result()
            return ctx.run_step(lambda: doubled + 1)

        return engine, parent

    first, parent = app()
    first.launch()
    assert first.start_workflow(parent, 20, workflow_id="fam").get_result(timeout=10) == 41
    child_status = first.get_workflow_status("fam-1")
    assert child_status is not None and child_status.parent_workflow_id == "fam"
    steps = first.list_steps("fam")
    assert [(s.name, s.child_workflow_id) for s in steps] == [
        ("child", "fam-1"),
        ("waymark.get_result", "fam-1"),
        (steps[2].name, None),
    ]
    first.shutdown()
    rewind(db, "fam", keep_steps=2)
    db.raw("DELETE FROM operation_outputs WHERE workflow_uuid = 'fam-1'")  # the child's record
    second, _ = app()
    second.launch()
    # The replay neither launches the child again nor waits for it: the result is recorded.
    assert second.retrieve_workflow("fam").get_result(timeout=10) == 41
    assert calls["child"] == 1


def test_child_failure_reaches_the_parent_as_workflow_failed(engine: Engine) -> None:
    @engine.workflow(name="bad-child")
    def bad_child(ctx):
        raise KeyError("missing")

    @engine.workflow(name="parent2")
    def parent(ctx):
        try:
            ctx.start_workflow(bad_child).get_result()
        except WorkflowFailedError as exc:
            return f"child failed with {exc.error_name}"
        return "no error"

    engine.launch()
    assert engine.start_workflow(parent).get_result(timeout=10) == "child failed with KeyError"


def test_go_steps_run_concurrently_and_select_records_the_winner(make_engine, db) -> None:
    slow_first = {"value": False}
    release = {"fast": threading.Event(), "slow": threading.Event()}
    rendezvous = threading.Barrier(2, timeout=10)

    def app() -> tuple[Engine, object]:
        engine = make_engine("fan", application_version="v1")

        @engine.step(name="meet")
        def meet(tag: str) -> str:
            rendezvous.wait()  # only passes if both go steps run at the same time
            return tag

        # The loser is held until the test lets it go: which one wins never depends on how
        # fast a loaded machine schedules the two threads.
        @engine.step(name="fast")
        def fast() -> str:
            if slow_first["value"]:
                release["fast"].wait(30)
            return "fast"

        @engine.step(name="slow")
        def slow() -> str:
            if not slow_first["value"]:
                release["slow"].wait(30)
            return "slow"

        @engine.workflow(name="fan")
        def fan(ctx):
            a, b = ctx.go(meet, "a"), ctx.go(meet, "b")
            both = [a.result(), b.result()]
            winner = ctx.select([ctx.go(fast), ctx.go(slow)])
            return {"both": both, "winner": winner, "after": ctx.run_step(lambda: "done")}

        return engine, fan

    engine, fan = app()
    engine.launch()
    result = engine.start_workflow(fan, workflow_id="fan").get_result(timeout=20)
    assert result == {"both": ["a", "b"], "winner": "fast", "after": "done"}
    release["slow"].set()
    names = [s.name for s in engine.list_steps("fan")]
    assert names[:2] == ["meet", "meet"] and "waymark.select" in names
    select_step = names.index("waymark.select") + 1

    # Fork after the select with the timing reversed: the replay returns the recorded winner.
    slow_first["value"] = True
    fork = engine.fork_workflow("fan", select_step + 1)
    assert fork.get_result(timeout=20)["winner"] == "fast"
    release["fast"].set()


def test_messages_fifo_per_topic_sent_before_recv(engine: Engine) -> None:
    ready = threading.Event()

    @engine.workflow(name="inbox")
    def inbox(ctx):
        ready.wait(10)
        got = [ctx.recv("orders", timeout=5) for _ in range(3)]
        other = ctx.recv("other", timeout=5)
        missing = ctx.recv("orders", timeout=0.2)
        return {"orders": got, "other": other, "missing": missing}

    engine.launch()
    engine.start_workflow(inbox, workflow_id="inbox")
    for n in range(3):  # all sent before the workflow starts receiving
        engine.send("inbox", {"n": n}, topic="orders")
    engine.send("inbox", "hello", topic="other")
    ready.set()
    assert engine.retrieve_workflow("inbox").get_result(timeout=10) == {
        "orders": [{"n": 0}, {"n": 1}, {"n": 2}],
        "other": "hello",
        "missing": None,
    }
    with pytest.raises(WorkflowNotFoundError):
        engine.send("nobody", 1)


def test_recv_waits_for_a_later_message_and_workflows_talk(engine: Engine) -> None:
    @engine.workflow(name="ping")
    def ping(ctx, target):
        ctx.send(target, "ping")
        return ctx.recv(timeout=10)

    @engine.workflow(name="pong")
    def pong(ctx):
        message = ctx.recv(timeout=10)
        ctx.send("pinger", f"pong to {message}")
        return message

    engine.launch()
    ponger = engine.start_workflow(pong, workflow_id="ponger")
    pinger = engine.start_workflow(ping, "ponger", workflow_id="pinger")
    assert pinger.get_result(timeout=20) == "pong to ping"
    assert ponger.get_result(timeout=20) == "ping"


def test_recv_timeout_is_durable(make_engine, db) -> None:
    def app() -> tuple[Engine, object]:
        engine = make_engine("patient", application_version="v1")

        @engine.workflow(name="patient")
        def patient(ctx):
            first = ctx.recv(timeout=0.3)
            return [first, ctx.run_step(lambda: "after")]

        return engine, patient

    engine, patient = app()
    engine.launch()
    assert engine.start_workflow(patient, workflow_id="pt").get_result(timeout=10) == [
        None,
        "after",
    ]
    recorded = [(s.name, s.output, s.completed_at) for s in engine.list_steps("pt")][:2]
    engine.shutdown()
    rewind(db, "pt", keep_steps=2)
    again, _ = app()
    again.launch()
    assert again.retrieve_workflow("pt").get_result(timeout=10) == [None, "after"]
    # Replayed, not waited again: the deadline and the receive are the records of the first run.
    replayed = [(s.name, s.output, s.completed_at) for s in again.list_steps("pt")][:2]
    assert replayed == recorded
    assert [name for name, _, _ in recorded] == ["waymark.recv.timeout", "waymark.recv"]


def test_events_set_and_get(engine: Engine) -> None:
    proceed = threading.Event()

    @engine.workflow(name="publisher")
    def publisher(ctx):
        ctx.set_event("stage", "started")
        proceed.wait(10)
        ctx.set_event("stage", "finished")
        return "ok"

    engine.launch()
    handle = engine.start_workflow(publisher, workflow_id="pub")
    assert engine.get_event("pub", "stage", timeout=10) == "started"
    proceed.set()
    handle.get_result(timeout=10)
    assert engine.get_event("pub", "stage", timeout=1) == "finished"
    assert engine.get_event("pub", "never", timeout=0.2) is None


def test_durable_operations_from_a_go_thread_are_refused(engine: Engine) -> None:
    @engine.workflow(name="misuse")
    def misuse(ctx):
        future = ctx.go(lambda: ctx.sleep(1))
        try:
            future.result(timeout=10)
        except EngineError as exc:
            return str(exc)
        return "allowed"

    engine.launch()
    message = engine.start_workflow(misuse, workflow_id="misuse-1").get_result(timeout=10)
    assert message == (
        "workflow 'misuse-1': durable operations (steps, sleep, send, ...) must be called "
        "from the workflow's own thread, not from inside ctx.go"
    )


def test_many_children_do_not_starve_the_pool(make_engine) -> None:
    engine = make_engine("starve", max_workflow_threads=2)

    @engine.workflow(name="leaf")
    def leaf(ctx, x):
        return ctx.run_step(lambda: x)

    @engine.workflow(name="root")
    def root(ctx, n):
        kids = [ctx.start_workflow(leaf, i) for i in range(n)]
        return sum(k.get_result() for k in kids)

    engine.launch()
    roots = [engine.start_workflow(root, 5) for _ in range(4)]  # 4 parents, 2 threads
    assert [r.get_result(timeout=30) for r in roots] == [10] * 4
    wait_until(lambda: not engine.runtime.active(), what="all runs ended")


def test_a_child_can_wait_on_a_queue(make_engine) -> None:
    engine = make_engine("queued-kids")
    engine.queue("kids", worker_concurrency=1)

    @engine.workflow(name="kid")
    def kid(ctx, x):
        return ctx.run_step(lambda: x + 100)

    @engine.workflow(name="mom")
    def mom(ctx, n):
        kids = [ctx.start_workflow(kid, i, queue="kids") for i in range(n)]
        return [k.get_result() for k in kids]

    engine.launch()
    assert engine.start_workflow(mom, 3, workflow_id="mom").get_result(timeout=20) == [
        100,
        101,
        102,
    ]
    kids = engine.list_workflows(queue_name="kids")
    assert {k.parent_workflow_id for k in kids} == {"mom"} and len(kids) == 3
