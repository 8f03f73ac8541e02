"""A small app that the crash tests run in a child process and SIGKILL.

Usage: python -m tests.apps.crashapp DATABASE_URL SCHEMA LEDGER MODE
MODE: start | recover (workflow "crashy"), sleep-start | sleep-recover (workflow "sleepy").
Each step appends a line to the LEDGER file (fsynced), so the test can count executions.
In "start" mode step "two" hangs after its ledger line, waiting for the kill.
"""

from __future__ import annotations

import json
import os
import sys
import time

from engine import Engine

url, schema, ledger_path, mode = sys.argv[1:5]
engine = Engine("crashapp", url, schema=schema, executor_id="crash-executor")


def ledger(line: str) -> None:
    fd = os.open(ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@engine.step(name="one")
def one(x: int) -> int:
    ledger("one")
    return x + 1


@engine.step(name="two")
def two(x: int) -> int:
    ledger("two-start")
    if mode == "start":
        time.sleep(600)  # killed here, mid-step
    ledger("two-done")
    return x * 10


@engine.step(name="three")
def three(x: int) -> str:
    ledger("three")
    return f"result {x}"


@engine.workflow(name="crashy")
def crashy(ctx, x):
    return three(two(one(x)))


@engine.workflow(name="sleepy")
def sleepy(ctx, seconds):
    ctx.sleep(seconds)
    return three(0)


engine.launch()
if mode == "start":
    engine.start_workflow(crashy, 1, workflow_id="crash-1")
    time.sleep(600)
elif mode == "sleep-start":
    engine.start_workflow(sleepy, 3, workflow_id="sleep-1")
    time.sleep(600)
else:
    wid = "crash-1" if mode == "recover" else "sleep-1"
    print(json.dumps(engine.retrieve_workflow(wid).get_result(timeout=60)), flush=True)
    engine.shutdown()
