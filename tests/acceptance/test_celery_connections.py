"""The Postgres connection budget of a real Celery worker (README, "Connections").

A dispatcher and one ``celery -A console worker --concurrency 4`` on a private Redis run 80
three-step workflows; every process tags its connections with ``application_name`` (libpq's
PGAPPNAME), and pg_stat_activity is sampled all along. The worker (main process and its four
prefork children) must stay within CONNECTIONS_PER_CHILD per child at its peak, and so must
the dispatcher within DISPATCHER_CONNECTIONS. Postgres only (the budget is about its
max_connections).
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from engine import Client
from engine.store import postgres
from tests.acceptance.test_celery import spawn, stop
from tests.services import private_redis
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = int(os.environ.get("WAYMARK_TEST_CELERY_CONCURRENCY", "4"))  # README: also 12
CONNECTIONS_PER_CHILD = 3  # one writer, up to two pooled readers (README's formula)
# The dispatcher is a full engine: its reader pool, LISTEN, and a writer per group-commit leader
# in flight of each kind (single, merged): usually 4, more only while commits are slow.
DISPATCHER_CONNECTIONS = postgres.POOL_MAX + 1 + 2 * postgres.PostgresStore.commit_leaders
WORKFLOWS = 80

pytestmark = pytest.mark.slow


class Peaks:
    """The most connections seen per application_name, sampled until stopped."""

    def __init__(self, url: str, names: list[str]) -> None:
        self.url, self.names = url, names
        self.peak = dict.fromkeys(names, 0)
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def now(self, conn: psycopg.Connection) -> dict[str, int]:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE application_name = ANY(%s) GROUP BY application_name",
            (self.names,),
        ).fetchall()
        return {name: count for name, count in rows}

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(0.02):
                for name, count in self.now(conn).items():
                    self.peak[name] = max(self.peak[name], count)
                self.samples += 1


def test_a_celery_worker_holds_at_most_three_connections_per_child(db, tmp_path) -> None:
    if db.backend != "postgres":
        pytest.skip("the connection budget is Postgres's")
    token = uuid.uuid4().hex[:8]
    names = {"dispatcher": f"wm-dispatcher-{token}", "celery": f"wm-celery-{token}"}
    with private_redis() as (broker_url, _), Client(db.url, schema=db.schema) as client:
        env = {
            **os.environ,
            "WAYMARK_DATABASE_URL": db.url,
            "WAYMARK_SCHEMA": db.schema,
            "WAYMARK_APP": "tests.apps.workerapp:build",
            "WAYMARK_APP_NAME": "workerapp",
            "WAYMARK_TEST_LEDGER": str(tmp_path / "ledger.txt"),
            "WAYMARK_CELERY_BROKER_URL": broker_url,
            "WAYMARK_TEST_SCHEDULE": "0 0 1 1 *",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'django.sqlite3'}",
        }
        celery = str(Path(sys.executable).with_name("celery"))
        worker_log = tmp_path / "celery.log"
        worker_args = [celery, "-A", "console", "worker", "-c", str(CONCURRENCY), "-n", "c@%h"]
        peaks = Peaks(db.url, list(names.values()))
        procs = [
            spawn(
                [sys.executable, "manage.py", "runworker", "--dispatch", "celery"],
                {**env, "PGAPPNAME": names["dispatcher"]},
                tmp_path / "dispatcher.log",
            ),
            spawn(
                [*worker_args, "--without-gossip", "--without-mingle"],
                {**env, "PGAPPNAME": names["celery"]},
                worker_log,
            ),
        ]
        peaks.thread.start()
        try:
            wait_until(
                lambda: "action=celery.ready" in worker_log.read_text(),
                limit=120,
                what="the Celery worker ready",
            )
            ids = [client.start_workflow("slowsteps", 3).workflow_id for _ in range(WORKFLOWS)]

            def done() -> int:
                return len(client.list_workflows(status="SUCCESS", limit=1000))

            wait_until(lambda: done() == WORKFLOWS, limit=240, what="every workflow done")
            samples = peaks.samples
            wait_until(lambda: peaks.samples > samples, limit=10, what="one more sample")
        finally:
            peaks.stop.set()
            peaks.thread.join(timeout=10)
            for proc in procs:
                stop(proc)
    ran = {line.split()[3] for line in (tmp_path / "ledger.txt").read_text().splitlines()}
    assert len(ran) >= 2, f"the work spread over the children: {ran}"
    print(f"peak connections: {peaks.peak} over {peaks.samples} samples ({len(ids)} workflows)")
    assert peaks.peak[names["celery"]] >= len(ran), "every child that ran work was seen"
    assert peaks.peak[names["celery"]] <= CONNECTIONS_PER_CHILD * CONCURRENCY, peaks.peak
    assert peaks.peak[names["dispatcher"]] <= DISPATCHER_CONNECTIONS, peaks.peak
