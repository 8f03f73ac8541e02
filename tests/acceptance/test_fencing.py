"""Ownership fencing and database-clock heartbeats (both backends).

A worker can be taken for dead while it is alive: its clock runs ahead of the others', or it
pauses (a stopped process, a long GC, a VM migration) past the heartbeat timeout. Then:
- heartbeats and their expiry are judged by the database's clock, so a worker's wrong clock
  declares no live worker dead;
- every checkpoint write reports whether the writer still owns the workflow, and the finishing
  write requires it: an execution whose workflow was handed to another executor stops at its
  next step boundary (only the step in flight can run twice), without cancelling or finishing it.

The process tests run tests/apps/fenceapp.py workers; they synchronise on the database and the
ledger with deadlines, never on sleeps.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine import Client, Status
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 3.0

pytestmark = pytest.mark.slow


class Fleet:
    """fenceapp worker processes on one database; each logs to its own file."""

    def __init__(self, db, tmp_path: Path) -> None:
        self.db, self.dir = db, tmp_path
        self.ledger = tmp_path / "ledger.txt"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, executor_id: str, clock_offset_s: float = 0.0) -> subprocess.Popen[bytes]:
        env = {**os.environ, "WAYMARK_TEST_CLOCK_OFFSET_S": str(clock_offset_s)}
        args = [self.db.url, self.db.schema, str(self.ledger), executor_id, str(HEARTBEAT_S)]
        with (self.dir / f"{executor_id}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.apps.fenceapp", *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.procs[executor_id] = proc
        return proc

    def log(self, executor_id: str) -> str:
        return (self.dir / f"{executor_id}.log").read_text()

    def steps(self) -> list[tuple[int, str]]:
        """(step index, executor) for every step execution, in the order they started."""
        if not self.ledger.exists():
            return []
        lines = [line.split() for line in self.ledger.read_text().splitlines()]
        return [(int(i), executor) for _, _, i, executor in lines]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture
def fleet(db, tmp_path):
    group = Fleet(db, tmp_path)
    yield group
    group.stop_all()


@pytest.fixture
def client(db):
    with Client(db.url, schema=db.schema) as c:
        yield c


def by_step(steps: list[tuple[int, str]]) -> dict[int, list[str]]:
    ran: dict[int, list[str]] = {}
    for i, executor in steps:
        ran.setdefault(i, []).append(executor)
    return ran


def db_now_ms(db) -> int:
    if db.backend == "sqlite":
        sql = "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    else:
        sql = "SELECT (extract(epoch FROM now()) * 1000)::bigint"
    return int(db.raw(sql)[0][0])  # type: ignore[arg-type]


def heartbeat_of(db, executor_id: str) -> int | None:
    rows = db.raw("SELECT last_heartbeat FROM executors WHERE executor_id = %s", (executor_id,))
    return int(rows[0][0]) if rows else None  # type: ignore[arg-type]


def test_a_worker_whose_clock_runs_ahead_declares_no_live_worker_dead(db, fleet, client) -> None:
    n = 20
    workflow_id = client.start_workflow("ledgered", n).workflow_id
    fleet.start("steady")
    wait_until(lambda: len(fleet.steps()) >= 2, limit=60, what="steady at work")
    fleet.start("ahead", clock_offset_s=120.0)
    # Its first heartbeat is followed at once by its first sweep for dead executors; with
    # heartbeats on the workers' clocks that sweep took "steady" (120 s behind) for dead.
    wait_until(lambda: heartbeat_of(db, "ahead") is not None, limit=60, what="ahead launched")
    done_then = len(fleet.steps())
    wait_until(
        lambda: len(fleet.steps()) >= min(n, done_then + 4),  # a second at least: sweeps ran
        limit=60,
        what="steady working on beside ahead",
    )
    assert client.retrieve_workflow(workflow_id).get_result(timeout=60) == sum(range(n))

    ran = by_step(fleet.steps())
    assert ran == {i: ["steady"] for i in range(n)}  # each step once, all on the live worker
    status = client.get_workflow_status(workflow_id)
    assert status is not None and status.executor_id == "steady"
    assert status.recovery_attempts == 0
    assert "action=executor.dead" not in fleet.log("ahead")
    # Its heartbeat carries the database's time, not its own (which is 120 s ahead).
    beat = heartbeat_of(db, "ahead")
    assert beat is not None and beat < db_now_ms(db) + 60_000


def holds_write_lock(db) -> bool:
    """SQLite: does some process hold the database's one write lock right now?"""
    if db.backend != "sqlite":
        # Postgres: every write is one statement or one pipelined BEGIN..COMMIT, which the
        # server completes even when the client is stopped: a stopped worker holds no lock.
        return False
    conn = sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def test_a_paused_worker_stops_at_its_next_step_boundary(db, fleet, client) -> None:
    n = 16
    workflow_id = client.start_workflow("ledgered", n).workflow_id
    paused = fleet.start("paused")
    wait_until(lambda: len(fleet.steps()) >= 3, limit=60, what="three steps done")
    # Stop it inside a step body (its ledger line is written as the body starts), and not
    # while it holds SQLite's write lock: that would stall every other worker until SIGCONT.
    for _ in range(20):
        seen = len(fleet.steps())
        wait_until(lambda s=seen: len(fleet.steps()) > s, limit=30, what="the next step")
        paused.send_signal(signal.SIGSTOP)
        if not holds_write_lock(db):
            break
        paused.send_signal(signal.SIGCONT)
    else:
        pytest.fail("never caught the worker outside a write")
    before = fleet.steps()
    in_flight = before[-1][0]
    assert in_flight < n - 1

    fleet.start("heir")  # sees "paused" silent past the timeout and takes the workflow over
    assert client.retrieve_workflow(workflow_id).get_result(timeout=90) == sum(range(n))
    paused.send_signal(signal.SIGCONT)
    wait_until(
        lambda: "action=workflow.fenced" in fleet.log("paused"),
        limit=30,
        what="the paused worker noticing it lost the workflow",
    )

    steps = fleet.steps()
    resumed = [i for i, ex in steps[len(before) :] if ex == "paused"]
    # After SIGCONT it finished the step in flight, and ran at most one more step if it was
    # stopped between two steps (then that one was "in flight"); nothing after that.
    assert len(resumed) <= 1
    last_of_paused = (resumed or [in_flight])[-1]
    ran = by_step(steps)
    assert sorted(ran) == list(range(n))
    twice = {i: ex for i, ex in ran.items() if len(ex) > 1}
    assert set(twice) <= {last_of_paused}  # only the step in flight ran twice...
    assert all(ex == ["paused", "heir"] for ex in twice.values())  # ...once on each worker
    assert all(ran[i] == ["heir"] for i in range(last_of_paused + 1, n))
    status = client.get_workflow_status(workflow_id)
    assert status is not None and status.status == Status.SUCCESS
    assert status.executor_id == "heir"
    # It stopped quietly: still a live worker, and it wrote no end for a workflow not its own.
    assert paused.poll() is None
    assert "action=workflow.finish" not in fleet.log("paused")


@pytest.mark.parametrize("lost_at", ["step", "step-recorded-by-new-owner", "finish"])
def test_an_execution_that_lost_its_workflow_writes_nothing_more(
    make_engine, db, caplog, lost_at
) -> None:
    """The fence in one process: another executor takes the workflow while a step runs (or
    just before the final write); this execution stops there and neither cancels nor
    finishes it."""
    caplog.set_level(logging.INFO, logger="waymark")
    engine = make_engine("fence", executor_id="me")
    ran: list[int] = []

    def take_over(record_step: int | None = None) -> None:
        db.raw("UPDATE workflow_status SET executor_id = 'other' WHERE workflow_uuid = 'w'")
        if record_step is not None:  # the new owner already recorded this step
            db.raw(
                "INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, "
                "output) VALUES ('w', %s, 'work', '-1')",
                (record_step,),
            )

    @engine.step(name="work")
    def work(i: int) -> int:
        ran.append(i)
        if i == 2 and lost_at == "step":
            take_over()
        if i == 2 and lost_at == "step-recorded-by-new-owner":
            take_over(record_step=3)  # step IDs count from 1: work(2) is step 3
        return i

    @engine.workflow(name="wf")
    def wf(ctx):
        values = [work(i) for i in range(5)]
        if lost_at == "finish":
            take_over()
        return values

    engine.launch()
    engine.start_workflow(wf, workflow_id="w")
    wait_until(
        lambda: any(getattr(r, "action", None) == "workflow.fenced" for r in caplog.records),
        what="the execution fenced",
    )
    assert ran == ([0, 1, 2, 3, 4] if lost_at == "finish" else [0, 1, 2])
    status = engine.get_workflow_status("w")
    assert status is not None
    assert (status.status, status.executor_id, status.output) == (Status.PENDING, "other", None)
    assert not any(getattr(r, "action", None) == "workflow.finish" for r in caplog.records)
