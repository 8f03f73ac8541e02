"""A real crash: a child process is SIGKILLed mid-step, a new one resumes the workflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run_app(db, ledger: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.apps.crashapp", db.url, db.schema, str(ledger), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(ledger: Path, line: str, proc: subprocess.Popen[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if ledger.exists() and line in ledger.read_text().split():
            return
        if proc.poll() is not None:
            pytest.fail(f"child exited early ({proc.returncode}): {proc.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.02)
    pytest.fail(f"{line!r} never appeared in the ledger")


def test_sigkill_mid_step_then_launch_resumes_from_last_completed_step(db, tmp_path) -> None:
    ledger = tmp_path / "ledger.txt"
    victim = run_app(db, ledger, "start")
    try:
        wait_for_line(ledger, "two-start", victim, limit=60)
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL

    survivor = run_app(db, ledger, "recover")
    out, err = survivor.communicate(timeout=90)
    assert survivor.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == "result 20"
    # Step one completed before the kill: never run again. Step two was in flight: run again.
    assert ledger.read_text().split() == ["one", "two-start", "two-start", "two-done", "three"]


def test_sigkill_during_a_durable_sleep_then_only_the_rest_is_slept(db, tmp_path) -> None:
    from engine import Client

    ledger = tmp_path / "ledger.txt"
    victim = run_app(db, ledger, "sleep-start")
    with Client(db.url, schema=db.schema) as client:
        try:
            deadline = time.monotonic() + 60
            while not client.list_steps("sleep-1"):
                assert time.monotonic() < deadline, "the sleep was never recorded"
                assert victim.poll() is None, victim.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.02)
        finally:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
        (sleep_step,) = client.list_steps("sleep-1")
        wake_at_ms = sleep_step.output

        survivor = run_app(db, ledger, "sleep-recover")
        out, err = survivor.communicate(timeout=90)
        assert survivor.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == "result 0"
        steps = client.list_steps("sleep-1")
        status = client.get_workflow_status("sleep-1")
    assert steps[0].name == "waymark.sleep" and steps[0].output == wake_at_ms  # not re-recorded
    assert status is not None and status.status == "SUCCESS"
    finished_ms = status.updated_at.timestamp() * 1000
    assert finished_ms >= wake_at_ms  # the sleep was honoured...
    assert finished_ms - wake_at_ms < 3000  # ...but not started over (it lasts 3 s)
    assert ledger.read_text().split() == ["three"]


def test_sigkill_of_an_async_workflow_mid_step_then_launch_resumes_it(db, tmp_path) -> None:
    ledger = tmp_path / "ledger.txt"
    victim = run_app(db, ledger, "async-start")
    try:
        wait_for_line(ledger, "atwo-start", victim, limit=60)
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL

    survivor = run_app(db, ledger, "async-recover")
    out, err = survivor.communicate(timeout=90)
    assert survivor.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == "result 40"
    # The gathered steps completed (in the reverse of call order) before the kill: replayed
    # by their step IDs, never run again. The step in flight runs again.
    lines = ledger.read_text().split()
    assert sorted(lines[:2]) == ["aone-1", "aone-2"]
    assert lines[2:] == ["atwo-start", "atwo-start", "atwo-done"]
