"""Orphans: a write that committed but whose answer was lost (both backends).

The connection drops after the server committed: the write is retried and finds its own work
done (the insert finds the ID taken, the claim finds nothing left). The rows stay PENDING under
this live executor with nothing here running them; the worker's sweep must adopt them (seen
orphaned at two sweeps in a row), run each once, and never adopt what runs or is parked here.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from engine import Engine, Status
from engine.orphans import Orphans
from engine.runs import Runs
from tests.engine.test_runtime_rules import capture_logs, records
from tests.support import wait_until

# Sweeps every heartbeat_timeout / 3: every 0.1 s here.
FAST_SWEEPS = {"heartbeat_timeout": 0.3}


def lose_answer(
    monkeypatch: pytest.MonkeyPatch, store: Any, backend: str, statement: str
) -> list[str]:
    """The first batch where ``statement`` returned rows (it created or claimed something)
    commits, then its connection "drops": the caller gets a transient error, and the group
    commit retries the batch."""
    real = store._execute_batch
    lost: list[str] = []

    def execute(writes: Sequence[Sequence[tuple[str, Any]]]) -> Any:
        results = real(writes)
        returned = any(
            rows
            for write, write_rows in zip(writes, results, strict=True)
            for (name, _), rows in zip(write, write_rows, strict=True)
            if name == statement
        )
        if returned and not lost:
            lost.append(statement)
            if backend == "sqlite":
                raise sqlite3.OperationalError("database is locked")
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return results

    monkeypatch.setattr(store, "_execute_batch", execute)
    return lost


def orphan(db, engine: Engine, counted: Any, workflow_id: str) -> None:
    """A workflow of this engine left PENDING with no run here (run, then rewound)."""
    engine.start_workflow(counted, 2, workflow_id=workflow_id).get_result(timeout=30)
    db.raw("UPDATE workflow_status SET status = 'PENDING' WHERE workflow_uuid = %s", (workflow_id,))
    db.raw("DELETE FROM operation_outputs WHERE workflow_uuid = %s", (workflow_id,))


def counting_app(engine: Engine, ran: Counter[str]) -> Any:
    @engine.step(name="count")
    def count(workflow_id: str) -> str:
        ran[workflow_id] += 1
        return workflow_id

    @engine.workflow(name="counted")
    def counted(ctx, x):
        return count(ctx.workflow_id) + f":{x}"

    return counted


def test_a_start_whose_answer_was_lost_still_runs_once(
    db, make_engine, monkeypatch, caplog
) -> None:
    engine: Engine = make_engine("lost-start", **FAST_SWEEPS)
    ran: Counter[str] = Counter()
    counted = counting_app(engine, ran)
    engine.launch()
    lost = lose_answer(monkeypatch, engine._parts.store, db.backend, "insert_workflow")
    capture_logs(caplog, logging.WARNING)
    handle = engine.start_workflow(counted, 1, workflow_id="lost answer/1")
    assert lost == ["insert_workflow"]  # the retried insert found the row: "not created"
    assert handle.get_result(timeout=30) == "lost answer/1:1"
    assert ran == {"lost answer/1": 1}
    (line,) = records(caplog, "workflow.orphaned")
    assert "lost answer/1" in line.getMessage()
    status = engine.get_workflow_status("lost answer/1")
    assert status is not None and status.recovery_attempts == 1


def test_a_queue_claim_whose_answer_was_lost_still_runs_its_workflows(
    db, make_engine, monkeypatch
) -> None:
    engine: Engine = make_engine("lost-claim", **FAST_SWEEPS)
    ran: Counter[str] = Counter()
    counted = counting_app(engine, ran)
    engine.queue("jobs")
    lost = lose_answer(monkeypatch, engine._parts.store, db.backend, "claim_queued")
    handles = [
        engine.start_workflow(counted, i, queue="jobs", workflow_id=f"job-{i}") for i in range(5)
    ]
    engine.launch()
    assert [h.get_result(timeout=30) for h in handles] == [f"job-{i}:{i}" for i in range(5)]
    assert lost == ["claim_queued"]
    assert ran == {f"job-{i}": 1 for i in range(5)}


def test_what_runs_or_is_parked_here_is_never_adopted(db, make_engine) -> None:
    engine: Engine = make_engine("busy")
    release = threading.Event()

    @engine.workflow(name="held")
    def held(ctx):
        ctx.run_step(release.wait)
        return "held"

    @engine.workflow(name="napping")
    def napping(ctx):
        ctx.sleep(3600)  # parked: no thread, still this process's run

    engine.launch()
    running = engine.start_workflow(held)
    parked = engine.start_workflow(napping)
    wait_until(lambda: engine.runtime.parked() == 1, 30, "the sleeper to park")
    store, resumed = engine._parts.store, []
    orphans = Orphans(
        store, engine.executor_id, engine.application_version, engine.runtime.running,
        lambda ids: resumed.append(ids) or len(ids),
    )  # fmt: skip
    for _ in range(3):
        store.uncertain_writes += 1  # as if a write had just failed: every sweep looks
        assert orphans.sweep() == 0
    assert resumed == []
    release.set()
    assert running.get_result(timeout=30) == "held"
    status = engine.get_workflow_status(parked.workflow_id)
    assert status is not None and status.status == Status.PENDING
    assert status.recovery_attempts == 0


def sweeper(engine: Engine, running: set[str], resumed: list[list[str]]) -> Orphans:
    """Orphans over ``running`` (the IDs run here), whose resume adds to it."""

    def resume(ids: list[str]) -> int:
        resumed.append(ids)
        running.update(ids)
        return len(ids)

    return Orphans(
        engine._parts.store,
        engine.executor_id,
        engine.application_version,
        running.__contains__,
        resume,
    )


def test_an_orphan_is_adopted_at_its_second_sighting(db, make_engine) -> None:
    engine: Engine = make_engine("sightings")
    orphan(db, engine, counting_app(engine, Counter()), "orphan-7")
    resumed: list[list[str]] = []
    running: set[str] = set()
    orphans = sweeper(engine, running, resumed)
    engine._parts.store.uncertain_writes += 1
    assert orphans.sweep() == 0  # first seen: its run may be about to start
    running.add("orphan-7")
    assert orphans.sweep() == 0  # it started: not an orphan, and forgotten (a clean look)
    running.clear()
    engine._parts.store.uncertain_writes += 1  # another write in doubt
    assert orphans.sweep() == 0
    assert orphans.sweep() == 1 and resumed == [["orphan-7"]]


def test_no_look_for_orphans_without_a_write_in_doubt(db, make_engine, monkeypatch) -> None:
    """Only a write that failed with a transient error can leave an orphan: until one does, a
    sweep reads nothing (and so never takes the running workflows of another process that
    shares this executor ID for orphans)."""
    engine: Engine = make_engine("quiet")
    orphan(db, engine, counting_app(engine, Counter()), "looks-orphaned")
    store, resumed, looks = engine._parts.store, [], []
    recoverable = store.recoverable_workflows
    monkeypatch.setattr(
        store, "recoverable_workflows", lambda *a: looks.append(a) or recoverable(*a)
    )
    orphans = sweeper(engine, set(), resumed)
    assert [orphans.sweep() for _ in range(3)] == [0, 0, 0] and looks == []
    store.uncertain_writes += 1
    assert [orphans.sweep() for _ in range(2)] == [0, 1] and len(looks) == 2
    assert resumed == [["looks-orphaned"]]
    assert orphans.sweep() == 0 and len(looks) == 3  # it runs now: a clean look...
    assert orphans.sweep() == 0 and len(looks) == 3  # ...and no more until the next doubt


def test_two_resumes_of_one_workflow_here_run_it_once(db, make_engine, monkeypatch) -> None:
    engine: Engine = make_engine("twice")
    ran: Counter[str] = Counter()
    counted = counting_app(engine, ran)
    orphan(db, engine, counted, "twice-2")
    store = engine._parts.store
    real = store.claim_recoveries
    both_checked = threading.Barrier(2, timeout=1)

    def slow_claim(ids: Sequence[str], executor_id: str) -> Any:
        try:  # without the claim lock both resumes get here, each having found no run
            both_checked.wait()
        except threading.BrokenBarrierError:
            pass
        return real(ids, executor_id)

    monkeypatch.setattr(store, "claim_recoveries", slow_claim)
    counts: list[int] = []
    resumes = [
        threading.Thread(target=lambda: counts.append(engine.runtime.resume(["twice-2"])))
        for _ in range(2)
    ]
    for thread in resumes:
        thread.start()
    for thread in resumes:
        thread.join()
    assert sorted(counts) == [0, 1]
    assert engine.retrieve_workflow("twice-2").get_result(timeout=30) == "twice-2:2"
    assert ran == {"twice-2": 2}  # its first run, then one resume


def test_a_late_start_stands_down_before_the_run_that_adopted_it() -> None:
    runs = Runs()
    adopted = runs.begin("wf", None, replace=True)  # the sweep's resume
    assert adopted is not None
    assert runs.begin("wf", None, replace=False) is None  # the start it adopted, come late
    assert runs.get("wf") is adopted
    # A run still winding down here (cancelled, then resumed at once) gives way.
    assert runs.begin("wf", None, replace=True) is not adopted


def test_an_id_being_claimed_is_begun_by_its_claimer_only() -> None:
    runs = Runs()
    others: list[object] = []
    with runs.claiming(["wf", "other"]) as reserved:
        assert reserved == ["wf", "other"]
        with runs.claiming(["wf"]) as again:
            assert again == []  # a second claim of it here gets nothing
        thread = threading.Thread(
            target=lambda: others.append(runs.begin("wf", None, replace=True))
        )
        thread.start()
        thread.join()
        assert others == [None]  # another thread cannot begin it meanwhile
        assert runs.begin("wf", None, replace=False) is not None  # the claimer can
    with runs.claiming(["wf", "other"]) as reserved:
        assert reserved == ["other"]  # "wf" runs now
