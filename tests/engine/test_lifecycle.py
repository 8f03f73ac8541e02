"""Data lifecycle: delete, export/import, garbage collection (both backends)."""

from __future__ import annotations

import json
import threading

import pytest

from engine import Client, ConflictingWorkflowError, Engine, EngineError, Status
from tests.support import wait_until


def app(engine: Engine, gate: threading.Event | None = None):
    @engine.step(name="add")
    def add(x: int) -> int:
        return x + 1

    @engine.workflow(name="kid")
    def kid(ctx, x):
        if gate is not None:
            gate.wait(30)
        return add(x)

    @engine.workflow(name="parent")
    def parent(ctx, x):
        ctx.set_event("seen", x)
        return ctx.start_workflow(kid, x).get_result()

    @engine.workflow(name="waiter")
    def waiter(ctx):
        return ctx.recv("go", timeout=30)

    return parent, kid, waiter


def counts(db, workflow_id: str) -> tuple[int, int, int, int]:
    one = lambda sql: db.raw(sql, (workflow_id,))[0][0]  # noqa: E731
    return (
        one("SELECT count(*) FROM workflow_status WHERE workflow_uuid = %s"),
        one("SELECT count(*) FROM operation_outputs WHERE workflow_uuid = %s"),
        one("SELECT count(*) FROM workflow_events WHERE workflow_uuid = %s"),
        one("SELECT count(*) FROM notifications WHERE destination_uuid = %s"),
    )


def test_delete_removes_every_row_and_refuses_unfinished(engine: Engine, db) -> None:
    parent, _, waiter = app(engine)
    engine.launch()
    assert engine.start_workflow(parent, 1, workflow_id="p").get_result(timeout=30) == 2
    assert counts(db, "p")[:3] == (1, 3, 1)  # set_event, the child's start and its result
    handle = engine.start_workflow(waiter, workflow_id="w")
    with pytest.raises(EngineError):
        engine.delete_workflow("w")  # PENDING: never deleted
    assert counts(db, "w")[0] == 1
    engine.send("w", "go", topic="go")
    assert handle.get_result(timeout=30) == "go"
    db.raw(
        "INSERT INTO notifications (destination_uuid, topic, message, created_at_epoch_ms, "
        "message_uuid) VALUES (%s, 'late', '1', 0, 'm-late')",
        ("w",),
    )
    engine.delete_workflow("w")
    assert counts(db, "w") == (0, 0, 0, 0)
    engine.delete_workflow("p")  # without its child
    assert counts(db, "p") == (0, 0, 0, 0)
    assert counts(db, "p-2")[0] == 1


def test_delete_children_needs_them_all_final(engine: Engine, db) -> None:
    gate = threading.Event()
    parent, _, _ = app(engine, gate)
    engine.launch()
    handle = engine.start_workflow(parent, 1, workflow_id="p")
    db_status = lambda wid: db.raw(  # noqa: E731
        "SELECT status FROM workflow_status WHERE workflow_uuid = %s", (wid,)
    )
    wait_until(lambda: db_status("p-2") == [("PENDING",)])
    with pytest.raises(EngineError):
        engine.delete_workflow("p", delete_children=True)
    gate.set()
    assert handle.get_result(timeout=30) == 2
    engine.delete_workflow("p", delete_children=True)
    assert counts(db, "p")[0] == 0 and counts(db, "p-2")[0] == 0


def test_export_then_import_elsewhere_and_conflict(make_engine, db, tmp_path) -> None:
    engine = make_engine()
    parent, _, _ = app(engine)
    engine.launch()
    assert engine.start_workflow(parent, 5, workflow_id="p").get_result(timeout=30) == 6
    data = engine.export_workflow("p", children=True)
    data = json.loads(json.dumps(data))  # JSON-serializable
    assert [w["workflow"]["workflow_uuid"] for w in data["workflows"]] == ["p", "p-2"]
    with pytest.raises(ConflictingWorkflowError):
        engine.import_workflow(data)
    engine.delete_workflow("p", delete_children=True)
    assert engine.import_workflow(data) == "p"
    status = engine.get_workflow_status("p")
    assert status is not None and status.status == Status.SUCCESS
    assert [s.name for s in engine.list_steps("p")] == [
        s["function_name"] for s in data["workflows"][0]["steps"]
    ]
    assert engine.retrieve_workflow("p").get_result(timeout=10) == 6
    assert engine.export_workflow("p", children=True) == data  # a faithful round trip
    # Into another (development) database: a SQLite file of its own, then forked there.
    dev_url = f"sqlite:///{tmp_path / 'dev.sqlite3'}"
    dev_engine = Engine("dev", dev_url)
    try:
        app(dev_engine)
        dev_engine.launch()
        with Client(dev_url) as dev:
            assert dev.import_workflow(data) == "p"
            assert len(dev.list_steps("p")) == 3
            # Re-run from the child's result step there.
            version = dev_engine.application_version
            fork = dev.fork_workflow("p", 3, application_version=version)
            assert fork.get_result(timeout=30) == 6
    finally:
        dev_engine.shutdown(timeout=5)


def finish_many(engine: Engine, db, n: int, name_fn, prefix: str) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    for wid in ids:
        engine.start_workflow(name_fn, 1, workflow_id=wid).get_result(timeout=30)
    return ids


def test_garbage_collect_age_keep_last_and_unfinished_parents(engine: Engine, db) -> None:
    gate, hold = threading.Event(), threading.Event()
    _, kid, _ = app(engine, gate)

    @engine.workflow(name="holder")
    def holder(ctx, x):
        done = ctx.start_workflow(kid, x, workflow_id="run-child").get_result()
        hold.wait(30)  # unfinished while its child is final
        return done

    engine.launch()
    gate.set()
    ids = finish_many(engine, db, 6, kid, "k")
    # Completion times 100, 90, ... 50 s ago, k0 the oldest: 10 s apart, so a slow machine's
    # seconds between this update and the collections cannot move one across a boundary.
    for i, wid in enumerate(ids):
        db.raw(
            "UPDATE workflow_status SET completed_at = completed_at - %s WHERE workflow_uuid = %s",
            ((10 - i) * 10_000, wid),
        )
    running = engine.start_workflow(holder, 1, workflow_id="run")
    wait_until(
        lambda: (s := engine.get_workflow_status("run-child")) is not None and s.status == "SUCCESS"
    )
    # A final child of the unfinished parent, completed long ago: never collected.
    db.raw("UPDATE workflow_status SET completed_at = 1 WHERE workflow_uuid = %s", ("run-child",))
    assert engine.garbage_collect(older_than=3600) == 0  # nothing that old
    assert engine.garbage_collect(older_than=0, keep_last=4) == 2  # k0, k1 go
    left = {r[0] for r in db.raw("SELECT workflow_uuid FROM workflow_status")}
    assert {"k0", "k1"}.isdisjoint(left) and {"k2", "k3", "k4", "k5", "run", "run-child"} <= left
    assert engine.garbage_collect(older_than=55) == 3  # k2, k3, k4 completed 80..60 s ago
    assert engine.lifecycle.garbage_collect(older_than=0, batch_size=1) == 1  # k5; the child stays
    left = {r[0] for r in db.raw("SELECT workflow_uuid FROM workflow_status")}
    assert left == {"run", "run-child"}
    hold.set()
    assert running.get_result(timeout=30) == 2


def test_garbage_collect_by_name_and_exclusions(engine: Engine, db) -> None:
    parent, kid, _ = app(engine)
    engine.launch()
    finish_many(engine, db, 3, kid, "k")
    finish_many(engine, db, 2, parent, "p")  # p0, p1 and children p0-2, p1-2 (kid)
    # older_than=0 takes what completed before now: not in this very millisecond.
    db.raw("UPDATE workflow_status SET completed_at = completed_at - 1000")
    lc = engine.lifecycle
    assert lc.garbage_collect(older_than=0, name="parent") == 2
    assert lc.garbage_collect(older_than=0, exclude=["kid"]) == 0
    assert lc.garbage_collect(older_than=0, keep_last=1, name="kid") == 4
    assert [r[0] for r in db.raw("SELECT name FROM workflow_status")] == ["kid"]
