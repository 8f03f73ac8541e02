"""Issue 15, part 1: cascading cancel, step timeouts, deduplication "return-existing",
patching (both backends)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from engine import (
    Client,
    Engine,
    QueueDeduplicatedError,
    Status,
    StepTimeoutError,
)
from tests.engine.test_recovery import rewind
from tests.support import wait_until


def status_of(engine: Engine, workflow_id: str) -> str | None:
    status = engine.get_workflow_status(workflow_id)
    return status.status if status is not None else None


# -- cancel_children ---------------------------------------------------------------------------


def family_app(engine: Engine):
    @engine.workflow(name="grandchild")
    def grandchild(ctx):
        return ctx.recv(timeout=120)

    @engine.workflow(name="child")
    def child(ctx):
        ctx.start_workflow(grandchild, workflow_id=f"{ctx.workflow_id}-g")
        return ctx.recv(timeout=120)

    @engine.workflow(name="parent")
    def parent(ctx):
        ctx.start_workflow(child, workflow_id=f"{ctx.workflow_id}-c")
        return ctx.recv(timeout=120)

    return parent


def test_cancel_children_cancels_every_unfinished_descendant(engine: Engine, db) -> None:
    parent = family_app(engine)
    engine.launch()
    engine.start_workflow(parent, workflow_id="p1")
    engine.start_workflow(parent, workflow_id="p2")
    family = ["p1", "p1-c", "p1-c-g"]
    wait_until(
        lambda: all(status_of(engine, w) == Status.PENDING for w in [*family, "p2-c-g"]),
        what="both families running",
    )
    engine.cancel_workflow("p1", cancel_children=True)
    assert [status_of(engine, w) for w in family] == [Status.CANCELLED] * 3

    with Client(db.url, schema=db.schema) as client:  # the default leaves children alone
        client.cancel_workflow("p2")
        assert status_of(engine, "p2") == Status.CANCELLED
        assert status_of(engine, "p2-c") == Status.PENDING
        client.cancel_workflow("p2-c", cancel_children=True)
    assert status_of(engine, "p2-c-g") == Status.CANCELLED


# -- step timeout ----------------------------------------------------------------------------


def test_a_step_attempt_past_its_timeout_fails_and_is_retried(engine: Engine) -> None:
    gate = threading.Event()
    attempts: Counter[str] = Counter()

    @engine.step(name="slow_once", timeout=0.5, max_attempts=2, interval_seconds=0)
    def slow_once() -> str:
        attempts["n"] += 1
        if attempts["n"] == 1:
            gate.wait(60)  # abandoned by the timeout; its late result is ignored
            return "late"
        return "second"

    @engine.step(name="always_slow", timeout=0.2)
    def always_slow() -> str:
        gate.wait(60)
        return "never"

    @engine.workflow(name="timed")
    def timed(ctx):
        return slow_once()

    @engine.workflow(name="timed_out")
    def timed_out(ctx):
        try:
            always_slow()
        except StepTimeoutError as exc:
            return f"caught: {exc.step_name}"
        return "no timeout"

    engine.launch()
    try:
        assert engine.start_workflow(timed, workflow_id="t1").get_result(timeout=30) == "second"
        assert attempts["n"] == 2
        steps = engine.list_steps("t1")
        assert [(s.name, s.output) for s in steps] == [("slow_once", "second")]
        assert engine.start_workflow(timed_out).get_result(timeout=30) == "caught: always_slow"
    finally:
        gate.set()


def test_a_bad_step_timeout_is_refused(engine: Engine) -> None:
    for bad in (-1, 0, "5"):
        with pytest.raises(ValueError, match="timeout"):
            engine.step(timeout=bad)  # type: ignore[arg-type]


# -- deduplication policy --------------------------------------------------------------------


def test_return_existing_gives_the_holder_of_the_deduplication_id(engine: Engine, db) -> None:
    q = engine.queue("dedup")

    @engine.workflow(name="waits")
    def waits(ctx, x):
        return (x, ctx.recv(timeout=120))

    engine.launch()
    first = engine.start_workflow(waits, 1, queue=q, deduplication_id="order-7")
    with pytest.raises(QueueDeduplicatedError):
        engine.start_workflow(waits, 2, queue=q, deduplication_id="order-7")
    again = engine.start_workflow(
        waits, 3, queue=q, deduplication_id="order-7", deduplication_policy="return-existing"
    )
    assert again.workflow_id == first.workflow_id
    with Client(db.url, schema=db.schema) as client:
        same = client.start_workflow(
            "waits", 4, queue="dedup", deduplication_id="order-7",
            deduplication_policy="return-existing",
        )  # fmt: skip
        assert same.workflow_id == first.workflow_id
        with pytest.raises(ValueError, match=r"'ignore'.*'reject', 'return-existing'"):
            client.start_workflow(
                "waits", 5, queue="dedup", workflow_id="bad", deduplication_id="order-7",
                deduplication_policy="ignore",
            )  # fmt: skip
    assert engine.get_workflow_status("bad") is None  # nothing written
    assert len(engine.list_workflows(name="waits")) == 1
    engine.send(first.workflow_id, "go")
    assert first.get_result(timeout=30) == [1, "go"]
    # Once the holder finished, the ID is free: a new workflow is made.
    fresh = engine.start_workflow(
        waits, 6, queue=q, deduplication_id="order-7", deduplication_policy="return-existing"
    )
    assert fresh.workflow_id != first.workflow_id
    engine.send(fresh.workflow_id, "go")
    assert fresh.get_result(timeout=30) == [6, "go"]


# -- patching --------------------------------------------------------------------------------


def patched_app(make_engine, calls: Counter[str], code: str) -> Engine:
    """The same workflow under three releases: 'old', 'patched', 'deprecated'."""
    engine = make_engine("patching", application_version="fixed")

    @engine.step(name="a")
    def a() -> str:
        calls["a"] += 1
        return "a"

    @engine.step(name="old_b")
    def old_b() -> str:
        calls["old_b"] += 1
        return "old"

    @engine.step(name="new_b")
    def new_b() -> str:
        calls["new_b"] += 1
        return "new"

    @engine.step(name="c")
    def c(b: str) -> str:
        calls["c"] += 1
        return f"{b}-c"

    @engine.workflow(name="evolving")
    def evolving(ctx):
        a()
        if code == "old":
            b = old_b()
        elif code == "patched":
            b = new_b() if ctx.patch("new-b") else old_b()
        else:
            assert ctx.deprecate_patch("new-b") is True
            b = new_b()
        return c(b)

    engine.launch()
    return engine


def step_names(engine: Engine, workflow_id: str) -> list[str]:
    return [s.name for s in engine.list_steps(workflow_id)]


def test_patch_sends_old_workflows_down_the_old_branch(make_engine, db) -> None:
    calls: Counter[str] = Counter()
    old = patched_app(make_engine, calls, "old")
    assert old.start_workflow("evolving", workflow_id="w-old").get_result(timeout=30) == "old-c"
    old.shutdown()
    rewind(db, "w-old", keep_steps=2)  # it had passed the patch point: a, old_b recorded

    calls.clear()
    patched = patched_app(make_engine, calls, "patched")
    assert patched.retrieve_workflow("w-old").get_result(timeout=30) == "old-c"
    assert calls == {"c": 1}  # old_b replayed, not re-run; nothing recorded for the patch
    assert step_names(patched, "w-old") == ["a", "old_b", "c"]

    new = patched.start_workflow("evolving", workflow_id="w-new")
    assert new.get_result(timeout=30) == "new-c"
    assert step_names(patched, "w-new") == ["a", "waymark.patch:new-b", "new_b", "c"]
    patched.shutdown()
    rewind(db, "w-new", keep_steps=3)

    calls.clear()
    again = patched_app(make_engine, calls, "patched")  # the marker replays: the new branch
    assert again.retrieve_workflow("w-new").get_result(timeout=30) == "new-c"
    assert calls == {"c": 1}
    again.shutdown()
    rewind(db, "w-new", keep_steps=3)

    calls.clear()
    deprecated = patched_app(make_engine, calls, "deprecated")
    assert deprecated.retrieve_workflow("w-new").get_result(timeout=30) == "new-c"
    assert calls == {"c": 1}  # marker consumed once: new_b still replays at its step ID
    latest = deprecated.start_workflow("evolving", workflow_id="w-latest")
    assert latest.get_result(timeout=30) == "new-c"
    assert step_names(deprecated, "w-latest") == ["a", "new_b", "c"]  # nothing recorded


def test_a_patch_name_must_be_a_string(engine: Engine) -> None:
    @engine.workflow(name="badpatch")
    def badpatch(ctx):
        try:
            ctx.patch(7)
        except TypeError as exc:
            return str(exc)
        return "accepted"

    engine.launch()
    assert "non-empty string, got 7" in engine.start_workflow(badpatch).get_result(timeout=30)
