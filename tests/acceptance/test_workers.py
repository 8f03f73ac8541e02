"""Workers at scale (both backends): queues, schedules, dead executors, draining.

Multi-process tests run tests/apps/workerapp.py workers as real processes on the test database.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import Client, QueueDeduplicatedError, Status
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class Workers:
    """Worker processes on one database, stopped (killed if need be) at the end."""

    def __init__(self, db, ledger: Path) -> None:
        self.db, self.ledger, self.procs = db, ledger, {}

    def start(self, executor_id: str, heartbeat: float = 30.0, **env: str) -> subprocess.Popen:
        # stderr goes to a file: a pipe nobody reads fills (64 KB of retry warnings and
        # tracebacks while a database restarts) and then blocks the worker's every log call.
        with self.ledger.with_name(f"{executor_id}.stderr").open("a") as stderr:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.apps.workerapp",
                    self.db.url,
                    self.db.schema,
                    str(self.ledger),
                    executor_id,
                    str(heartbeat),
                ],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
            )
        self.procs[executor_id] = proc
        return proc

    def lines(self, kind: str) -> list[list[str]]:
        if not self.ledger.exists():
            return []
        return [
            line.split()[1:]
            for line in self.ledger.read_text().splitlines()
            if line.startswith(kind + " ")
        ]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        # Shown by pytest only when the test failed: what each worker said last.
        for executor_id in self.procs:
            log = self.ledger.with_name(f"{executor_id}.stderr")
            if log.exists():
                print(f"--- {log.name} (last 4,000 characters)\n{log.read_text()[-4000:]}")


@pytest.fixture
def workers(db, tmp_path):
    group = Workers(db, tmp_path / "ledger.txt")
    yield group
    group.stop_all()


@pytest.fixture
def client(db):
    with Client(db.url, schema=db.schema) as c:
        yield c


def all_done(client: Client, ids: list[str]) -> bool:
    return all(
        (s := client.get_workflow_status(i)) is not None and s.status == Status.SUCCESS for i in ids
    )


def max_overlap(intervals: list[tuple[int, int]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def test_queue_limits_hold_across_two_worker_processes(workers, client) -> None:
    ids = [client.start_workflow("tracked", i, queue="limited").workflow_id for i in range(10)]
    workers.start("w1")
    workers.start("w2")
    wait_until(lambda: all_done(client, ids), limit=60, what="all tracked workflows done")
    starts = {(wid, ex): int(ms) for wid, ex, ms in workers.lines("start")}
    ends = {(wid, ex): int(ms) for wid, ex, ms in workers.lines("end")}
    intervals = {key: (starts[key], ends[key]) for key in starts}
    assert len(intervals) == 10
    assert max_overlap(list(intervals.values())) <= 2  # concurrency=2 across workers
    for executor in ("w1", "w2"):  # worker_concurrency=1 in each
        assert max_overlap([v for (_, ex), v in intervals.items() if ex == executor]) <= 1
    assert {ex for _, ex in intervals} == {"w1", "w2"}


def test_rate_limit_priority_dedup_and_delay(make_engine) -> None:
    engine = make_engine("queues", max_workflow_threads=8)
    rated = engine.queue("rated", rate_limit=(3, 1.0))
    serial = engine.queue("serial", worker_concurrency=1)
    order: list[str] = []

    @engine.workflow(name="noted")
    def noted(ctx, tag):
        return ctx.run_step(lambda: order.append(tag) or tag)

    # Enqueued before launch: priority decides (lower first), then age.
    prioritized = []
    for tag, priority in [("p5", 5), ("p1a", 1), ("p3", 3), ("p1b", 1), ("p2", 2)]:
        prioritized.append(engine.start_workflow(noted, tag, queue=serial, priority=priority))
        time.sleep(0.002)
    held = engine.start_workflow(noted, "dedup", queue="serial", deduplication_id="d-1")
    with pytest.raises(QueueDeduplicatedError, match="d-1"):
        engine.start_workflow(noted, "again", queue="serial", deduplication_id="d-1")
    rated_ids = [engine.start_workflow(noted, f"r{i}", queue=rated).workflow_id for i in range(7)]
    delayed = engine.start_workflow(noted, "later", queue=serial, delay=1.0)
    assert delayed.get_status().status == Status.DELAYED

    engine.launch()
    assert held.get_result(timeout=20) == "dedup"
    for handle in prioritized:
        handle.get_result(timeout=20)
    assert [t for t in order if t.startswith("p")] == ["p1a", "p1b", "p2", "p3", "p5"]
    # Free again once the holder finished.
    engine.start_workflow(noted, "after", queue="serial", deduplication_id="d-1").get_result(
        timeout=20
    )
    for wid in rated_ids:
        engine.retrieve_workflow(wid).get_result(timeout=20)
    starts = sorted(engine.get_workflow_status(w).updated_at for w in rated_ids)  # type: ignore[union-attr]
    assert starts[-1] - starts[0] >= dt.timedelta(seconds=2)  # 7 starts at 3 per second
    assert delayed.get_result(timeout=20) == "later"
    status = delayed.get_status()
    assert status.updated_at - status.created_at >= dt.timedelta(seconds=1)


def test_scheduled_ticks_run_exactly_once_with_two_workers(workers, client) -> None:
    workers.start("s1")
    workers.start("s2")
    wait_until(lambda: len(workers.lines("tick")) >= 3, limit=60, what="three ticks run")
    workers.stop_all()
    ticks = [tick for tick, _, _ in workers.lines("tick")]
    assert len(ticks) >= 2
    assert len(ticks) == len(set(ticks))  # every tick ran once, whichever worker won it
    runs = client.list_workflows(name="ticker", limit=100)
    assert len(runs) == len(set(r.workflow_id for r in runs)) >= len(ticks)
    assert all(r.workflow_id.startswith("ticker@") for r in runs)


def test_backfill_and_bad_cron(make_engine) -> None:
    engine = make_engine("cron")
    seen: list[dt.datetime] = []

    @engine.workflow(name="hourly", schedule="0 * * * *")
    def hourly(ctx, tick):
        seen.append(tick)
        return tick.isoformat()

    with pytest.raises(ValueError, match="seconds first"):
        engine.register_workflow(lambda ctx, t: t, name="bad", schedule="every minute")
    engine.launch()
    start = dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.UTC)
    end = dt.datetime(2026, 1, 1, 3, 30, tzinfo=dt.UTC)
    results = [h.get_result(timeout=10) for h in engine.backfill("hourly", start, end)]
    assert results == [f"2026-01-01T0{h}:00:00+00:00" for h in (1, 2, 3)]
    assert all(isinstance(t, dt.datetime) and t.tzinfo is not None for t in seen)
    again = engine.backfill("hourly", start, end)  # the same ticks: nothing runs twice
    assert [h.get_result(timeout=10) for h in again] == results
    assert len(seen) == 3


def test_dead_executor_work_is_taken_over_after_sigkill(workers, client) -> None:
    workflow_id = client.start_workflow("slowsteps", 12).workflow_id
    victim = workers.start("doomed", heartbeat=1.0)
    wait_until(lambda: len(workers.lines("step")) >= 3, limit=30, what="three steps done")
    victim.kill()
    victim.wait(timeout=10)
    workers.start("heir", heartbeat=1.0)
    assert client.retrieve_workflow(workflow_id).get_result(timeout=60) == sum(range(12))
    steps = workers.lines("step")
    ran = [(int(i), ex) for _, i, ex, _ in steps]
    by_step: dict[int, list[str]] = {}
    for i, ex in ran:
        by_step.setdefault(i, []).append(ex)
    assert sorted(by_step) == list(range(12))
    # Only the step in flight at the kill may have run twice; the heir did the rest.
    assert sum(len(v) - 1 for v in by_step.values()) <= 1
    assert by_step[11] == ["heir"]
    status = client.get_workflow_status(workflow_id)
    assert status is not None and status.recovery_attempts >= 1


def test_runworker_drains_on_sigterm_leaving_work_pending(db, client, tmp_path) -> None:
    ledger = tmp_path / "ledger.txt"
    env = {
        **os.environ,
        "WAYMARK_DATABASE_URL": db.url,
        "WAYMARK_SCHEMA": db.schema,
        "WAYMARK_APP": "tests.apps.workerapp:build",
        "WAYMARK_TEST_LEDGER": str(ledger),
        "WAYMARK_APP_NAME": "workerapp",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dj.db'}",
        "WAYMARK_TEST_SCHEDULE": "0 0 1 1 *",
    }
    workflow_id = client.start_workflow("slowsteps", 200).workflow_id
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--executor-id", "drainer", "--grace", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: ledger.exists() and len(ledger.read_text().splitlines()) >= 3,
            limit=60,
            what="steps running under runworker",
        )
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "action=workflow.start" in out and "action=engine.drain" in out
    status = client.get_workflow_status(workflow_id)
    assert status is not None and status.status == Status.PENDING  # never CANCELLED
    assert status.executor_id == "drainer"
    done = len(ledger.read_text().splitlines())
    assert 3 <= done < 200
