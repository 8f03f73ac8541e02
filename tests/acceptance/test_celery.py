"""Celery distribution with real processes: a dispatching runworker, two `celery worker`s on
Redis, one SIGKILLed midway; or the broker restarted (a private redis-server, never the shared
one). Every workflow must end SUCCESS and no step may run again after its completion was
recorded. Each run has a private broker (redis-server, or RabbitMQ for that fault); CI
requires redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Client, Status
from tests.conftest import IN_CI
from tests.services import (
    PrivateRabbitMQ,
    PrivateRedis,
    private_rabbitmq,
    private_redis,
    rabbitmq_binaries_missing,
    redis_binary_missing,
)
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def broker(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, PrivateRedis | PrivateRabbitMQ | None]]:
    """(URL, server): a private broker for every fault. Never the shared Redis: two runs of
    this test (both databases, on two pytest workers, or another checkout's suite on the same
    machine) would flush and consume each other's tasks there."""
    fault = request.node.callspec.params.get("fault")
    if fault == "restart_rabbitmq":
        missing = rabbitmq_binaries_missing()
        if missing:
            pytest.skip(missing)
        with private_rabbitmq() as (url, rabbit):
            yield url, rabbit
        return
    missing = redis_binary_missing()
    if missing:
        if IN_CI:
            pytest.fail(f"{missing} (CI=true: the Celery tests are required)")
        pytest.skip(missing)
    with private_redis() as (url, server):
        # The kill fault keeps the broker up; only the restart faults take it away.
        yield url, server if fault == "restart_broker" else None


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)


# 200 workflows through two Celery workers take about a minute; on a loaded machine
# several times that. The waits below are the real limits; this only backs them up.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("fault", ["kill_worker", "restart_broker", "restart_rabbitmq"])
def test_celery_workers_lose_nothing_under_faults(db, broker, tmp_path, fault) -> None:
    """Faults: a worker SIGKILLed; a private Redis, or a private RabbitMQ, restarted mid-run
    (then no Celery worker may exit: they reconnect and go on)."""
    if fault.startswith("restart_") and db.backend != "postgres":
        pytest.skip("a broker restart runs once, on Postgres")
    broker_url, private_broker = broker
    ledger = tmp_path / "ledger.txt"
    env = {
        **os.environ,
        "WAYMARK_DATABASE_URL": db.url,
        "WAYMARK_SCHEMA": db.schema,
        "WAYMARK_APP": "tests.apps.workerapp:build",
        "WAYMARK_APP_NAME": "workerapp",
        "WAYMARK_TEST_LEDGER": str(ledger),
        "WAYMARK_CELERY_BROKER_URL": broker_url,
        "WAYMARK_HEARTBEAT_TIMEOUT": "2",
        "WAYMARK_TEST_SCHEDULE": "0 0 1 1 *",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'django.sqlite3'}",
        "WAYMARK_CELERY_RESEND_AFTER": "5",
    }
    celery = str(Path(sys.executable).with_name("celery"))
    worker_args = [
        celery,
        "-A",
        "console",
        "worker",
        "--concurrency",
        "4",
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    with Client(db.url, schema=db.schema) as client:
        ids = [client.start_workflow("slowsteps", 3).workflow_id for _ in range(200)]
        procs = [
            spawn(
                [
                    sys.executable,
                    "manage.py",
                    "runworker",
                    "--dispatch",
                    "celery",
                    "--executor-id",
                    "dispatcher",
                ],
                env,
                tmp_path / "dispatcher.log",
            ),
            spawn([*worker_args, "-n", "a@%h"], env, tmp_path / "celery-a.log"),
            spawn([*worker_args, "-n", "b@%h"], env, tmp_path / "celery-b.log"),
        ]
        try:

            def done() -> int:
                return len(client.list_workflows(status="SUCCESS", limit=1000))

            wait_until(lambda: done() >= 50, limit=120, what="50 workflows done")
            if fault == "kill_worker":
                stop(procs[1], signal.SIGKILL)  # worker a dies mid-run, with work in hand
            else:
                assert private_broker is not None
                private_broker.restart()  # Redis loses every queued task
            wait_until(lambda: done() == 200, limit=240, what="all 200 workflows done")
            if fault.startswith("restart_"):  # no worker exited (kombu's restore crash)
                exited = [p.args[-1] for p in procs[1:] if p.poll() is not None]
                assert exited == [], f"Celery workers exited after the broker restart: {exited}"
        finally:
            for proc in procs:
                stop(proc)
        statuses = {client.get_workflow_status(i).status for i in ids}  # type: ignore[union-attr]
        assert statuses == {Status.SUCCESS}
        # No step ran again after its completion had been recorded.
        completed = {}
        for wid in ids:
            for step in client.list_steps(wid):
                assert step.completed_at is not None
                completed[(wid, step.step_id - 1)] = step.completed_at.timestamp() * 1000
    runs = [line.split() for line in ledger.read_text().splitlines() if line.startswith("step ")]
    late = [r for r in runs if int(r[4]) > completed[(r[1], int(r[2]))]]
    assert late == []
    executors = {r[3] for r in runs}
    assert len(executors) >= 2 and all(e.startswith("celery-") for e in executors)


def test_async_workflows_run_through_celery(db, broker, tmp_path) -> None:
    """Async workflows dispatched through Celery (a dispatching runworker, a real `celery
    worker`) end SUCCESS with every async step and the durable sleep checkpointed."""
    broker_url, _ = broker
    ledger = tmp_path / "ledger.txt"
    env = {
        **os.environ,
        "WAYMARK_DATABASE_URL": db.url,
        "WAYMARK_SCHEMA": db.schema,
        "WAYMARK_APP": "tests.apps.workerapp:build",
        "WAYMARK_APP_NAME": "workerapp",
        "WAYMARK_TEST_LEDGER": str(ledger),
        "WAYMARK_CELERY_BROKER_URL": broker_url,
        "WAYMARK_TEST_SCHEDULE": "0 0 1 1 *",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'django.sqlite3'}",
    }
    with Client(db.url, schema=db.schema) as client:
        ids = [client.start_workflow("async_steps", 5).workflow_id for _ in range(20)]
        dispatcher = [sys.executable, "manage.py", "runworker", "--dispatch", "celery"]
        procs = [
            spawn([*dispatcher, "--executor-id", "dispatcher"], env, tmp_path / "dispatcher.log"),
            spawn(
                [*celery_worker_args(), "-c", "2", "-n", "a@%h", "--loglevel", "WARNING"],
                env,
                tmp_path / "celery.log",
            ),
        ]
        try:

            def final() -> int:
                return len(client.list_workflows(status=["SUCCESS", "ERROR"], limit=100))

            wait_until(lambda: final() == 20, limit=180, what="all 20 async workflows final")
        finally:
            for proc in procs:
                stop(proc)
        for wid in ids:
            status = client.get_workflow_status(wid)
            assert status is not None and status.status == Status.SUCCESS, status
            assert status.output == 10 and status.executor_id.startswith("celery-")
            steps = client.list_steps(wid)
            assert [s.name for s in steps] == [*["async_step"] * 5, "waymark.sleep"]
            assert [s.output for s in steps[:5]] == [0, 1, 2, 3, 4]
    runs = [line.split() for line in ledger.read_text().splitlines() if line.startswith("step ")]
    assert sorted((r[1], int(r[2])) for r in runs) == sorted(
        (wid, i) for wid in ids for i in range(5)
    )  # each step ran once
    assert {r[3] for r in runs} and all(r[3].startswith("celery-") for r in runs)


def celery_worker_args() -> list[str]:
    celery = str(Path(sys.executable).with_name("celery"))
    return [celery, "-A", "console", "worker", "-c", "1", "--without-gossip", "--without-mingle"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"WAYMARK_DATABASE_URL": None}, "WAYMARK_DATABASE_URL is not set"),
        ({"WAYMARK_APP": "tests.apps.no_such_module:build"}, "does not load"),
        (
            {"WAYMARK_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
            "system database is unreachable",
        ),
    ],
    ids=["no_database_url", "app_does_not_load", "database_unreachable"],
)
def test_misconfigured_celery_worker_refuses_to_start(tmp_path, change, expected) -> None:
    """It exits (EX_CONFIG) with one clear line before consuming a task; the broker need not
    even exist (nothing is consumed)."""
    env = {
        **os.environ,
        "WAYMARK_DATABASE_URL": f"sqlite:///{tmp_path / 'waymark.sqlite3'}",
        "WAYMARK_APP": "tests.apps.workerapp:build",
        "WAYMARK_APP_NAME": "workerapp",
        "WAYMARK_CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'django.sqlite3'}",
        "WAYMARK_DB_RETRY_SECONDS": "2",
    }
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    done = subprocess.run(
        celery_worker_args(), cwd=ROOT, env=env, capture_output=True, timeout=180, check=False
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 78, output
    assert "refuses to start" in output and expected in output, output
    assert "action=celery.misconfigured" in output
