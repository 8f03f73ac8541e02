"""Chaos: the guarantees under faults, with real processes and a real database.

- A worker running N five-step workflows is SIGKILLed K times at random moments (restarted
  each time), then allowed to finish: every workflow SUCCESS, none lost, and no step that was
  recorded as completed ran again after its completion time (every step appends to a ledger).
  CI runs N=300, K=8; `make chaos` runs N=2000, K=50.
- Postgres restarted under a running worker (a private cluster, never the shared one): it
  reconnects, the run finishes, nothing lost, and the console answers again.
- Two executions of one workflow racing: each step's result is recorded once and the loser
  adopts the winner's.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from engine import Client, Engine, Status, store
from engine.runs import Run
from tests.acceptance.test_workers import Workers
from tests.conftest import IN_CI, Database
from tests.services import postgres_binaries_missing, private_postgres
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = int(os.environ.get("WAYMARK_CHAOS_WORKFLOWS", "300"))
KILLS = int(os.environ.get("WAYMARK_CHAOS_KILLS", "8"))

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def count_success(client: Client, n: int) -> int:
    return len(client.list_workflows(status="SUCCESS", name="chaos5", limit=n + 1))


def ledger_check(client: Client, ledger: Path, ids: list[str]) -> tuple[int, int]:
    """(executions, executions that started after the step's recorded completion)."""
    completed: dict[tuple[str, int], float] = {}
    for workflow_id in ids:
        for step in client.list_steps(workflow_id):
            assert step.completed_at is not None
            completed[(workflow_id, step.step_id)] = step.completed_at.timestamp() * 1000
    runs = [line.split() for line in ledger.read_text().splitlines() if line.startswith("chaos ")]
    late = [r for r in runs if int(r[4]) > completed[(r[1], int(r[2]))]]
    return len(runs), len(late)


def test_sigkill_storm(db, tmp_path) -> None:
    workers = Workers(db, tmp_path / "ledger.txt")
    rng = random.Random(int(os.environ.get("WAYMARK_CHAOS_SEED", "7")))
    with Client(db.url, schema=db.schema) as client:
        ids = [client.start_workflow("chaos5", i).workflow_id for i in range(WORKFLOWS)]
        started = time.monotonic()
        try:
            for _ in range(KILLS):
                before = len(workers.lines("chaos"))
                proc = workers.start("chaos-worker")
                # Kill at a random moment once it is working (not while it is still starting:
                # a kill before any work would prove nothing).
                wait_until(
                    lambda b=before: (
                        len(workers.lines("chaos")) > b
                        or count_success(client, WORKFLOWS) == WORKFLOWS
                    ),
                    limit=60,
                    what="the worker at work",
                )
                time.sleep(rng.uniform(0.0, 0.4))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
            workers.start("chaos-worker")
            wait_until(
                lambda: count_success(client, WORKFLOWS) == WORKFLOWS,
                limit=600,
                what="every workflow SUCCESS",
            )
        finally:
            workers.stop_all()
        elapsed = time.monotonic() - started
        statuses = {s.status for s in (client.get_workflow_status(i) for i in ids) if s}
        lost = WORKFLOWS - count_success(client, WORKFLOWS)
        executions, duplicates = ledger_check(client, tmp_path / "ledger.txt", ids)
    print(
        f"\nchaos[{db.backend}]: {WORKFLOWS} workflows x 5 steps, {KILLS} SIGKILLs, "
        f"{executions} step executions ({executions - 5 * WORKFLOWS} re-runs of steps in "
        f"flight), {duplicates} re-runs after completion, {lost} lost, {elapsed:.1f} s"
    )
    assert statuses == {Status.SUCCESS}
    assert lost == 0
    assert duplicates == 0


def test_postgres_restart_under_a_running_worker(tmp_path) -> None:
    # A private cluster: the machine's shared Postgres is never restarted by a test.
    missing = postgres_binaries_missing()
    if missing:
        if IN_CI:
            pytest.fail(f"{missing} (CI=true: required)")
        pytest.skip(missing)
    with private_postgres() as (url, server):
        db = Database("postgres", url, "waymark")
        workers = Workers(db, tmp_path / "ledger.txt")
        with Client(db.url, schema=db.schema) as client:
            ids = [client.start_workflow("chaos5", i).workflow_id for i in range(150)]
            try:
                workers.start("pg-restart-worker")
                wait_until(
                    lambda: count_success(client, 150) >= 20, limit=60, what="work under way"
                )
                server.restart()
                wait_until(
                    lambda: count_success(client, 150) == 150,
                    limit=90,
                    what="every workflow SUCCESS after the restart",
                )
            finally:
                workers.stop_all()
            executions, duplicates = ledger_check(client, tmp_path / "ledger.txt", ids)
        print(
            f"\npostgres restart: 150 workflows, {executions} step executions, "
            f"{duplicates} re-runs after completion"
        )
        assert duplicates == 0
        # The console reconnects on its own too.
        from django.contrib.auth import get_user_model
        from django.test import Client as WebClient

        import tests.console.console_site as site

        site.point_engine_database(db)
        web = WebClient()
        web.force_login(get_user_model().objects.get_or_create(username="after-restart")[0])
        try:
            assert web.get("/workflows/?name=chaos5").status_code == 200
        finally:
            from django.db import connections

            connections["waymark"].close()  # before the private server goes away


def test_two_executions_racing_record_each_step_once(make_engine, db) -> None:
    engine: Engine = make_engine("race", application_version="v1")
    executions: list[int] = []
    lock = threading.Lock()

    @engine.step(name="coin")
    def coin(i: int) -> str:
        with lock:
            executions.append(i)
        time.sleep(random.uniform(0, 0.01))
        return uuid.uuid4().hex  # different in every execution: only one may be recorded

    @engine.workflow(name="race")
    def race(ctx):
        return [coin(i) for i in range(20)]

    engine.launch()
    handle = engine.start_workflow(race, workflow_id="racer")
    # A duplicate recovery: more executions of the same workflow, replaying nothing.
    system = store.connect(db.url, db.schema)
    try:
        row = system.get_workflow("racer")
    finally:
        system.close()
    assert row is not None
    runs = [Run() for _ in range(3)]
    for run in runs:
        engine.runtime.run_claimed(dataclasses.replace(row, fresh=True), run)
    first = handle.get_result(timeout=20)
    for run in runs:
        assert run.done.wait(20)
    recorded = [s.output for s in engine.list_steps("racer")]
    assert first == recorded  # the workflow's result is what was recorded...
    assert all(r.outcome is None or r.outcome.status == "SUCCESS" for r in runs)
    assert len(recorded) == 20 and len(set(recorded)) == 20
    assert row is not None and len(executions) >= 20  # ...though several executions ran
