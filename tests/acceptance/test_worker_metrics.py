"""runworker --metrics-port serves the worker's own counters (a real process, loopback only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from engine import Client
from tests.support import free_port, owns_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(db):
    with Client(db.url, schema=db.schema) as c:
        yield c


def test_runworker_serves_its_metrics(db, client, tmp_path) -> None:
    env = {
        **os.environ,
        "WAYMARK_DATABASE_URL": db.url,
        "WAYMARK_SCHEMA": db.schema,
        "WAYMARK_APP": "tests.apps.workerapp:build",
        "WAYMARK_TEST_LEDGER": str(tmp_path / "ledger.txt"),
        "WAYMARK_APP_NAME": "workerapp",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dj.db'}",
        "WAYMARK_TEST_SCHEDULE": "0 0 1 1 *",
    }
    workflow_id = client.start_workflow("slowsteps", 2).workflow_id
    exits = []
    for _attempt in range(5):  # the free port can be taken before the worker binds it
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "--executor-id", "m1", "--metrics-port",
             str(port)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        wait_until(
            lambda: proc.poll() is not None or owns_port(proc.pid, port),  # noqa: B023
            limit=60,
            what="the worker to listen on its metrics port, or exit",
        )
        if proc.poll() is None:
            break
        exits.append(proc.communicate()[0][-2000:])
    else:
        pytest.fail("the worker never served its metrics port:\n" + "\n".join(exits))
    try:
        assert client.retrieve_workflow(workflow_id).get_result(timeout=60) == 1

        def scraped() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                return False
            return 'waymark_steps_total{outcome="success",step="slow_step"} 2.0' in text

        wait_until(scraped, limit=60, what="the worker's metrics endpoint")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
