"""A small app that the crash tests run in a child process and SIGKILL.

Usage: python -m tests.apps.crashapp DATABASE_URL SCHEMA LEDGER MODE
MODE: start | recover (workflow "crashy"), sleep-start | sleep-recover (workflow "sleepy"),
async-start | async-recover (workflow "acrashy", async, started from an event loop).
Each step appends a line to the LEDGER file (fsynced), so the test can count executions.
In "start" mode step "two" hangs after its ledger line, waiting for the kill.
"""

from __future__ import annotations

import asyncio
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


@engine.step(name="aone")
async def aone(x: int) -> int:
    await asyncio.sleep(0.01 * x)
    ledger(f"aone-{x}")
    return x


@engine.step(name="atwo")
async def atwo(x: int) -> int:
    ledger("atwo-start")
    if mode == "async-start":
        await asyncio.sleep(600)  # killed here, mid-step
    ledger("atwo-done")
    return x * 10


@engine.workflow(name="acrashy")
async def acrashy(ctx, x):
    got = await asyncio.gather(aone(2), aone(1))  # finish in the other order than called
    return f"result {await atwo(sum(got) + x)}"


async def start_async() -> None:
    await engine.start_workflow_async(acrashy, 1, workflow_id="acrash-1")
    await asyncio.sleep(600)


engine.launch()
if mode == "async-start":
    asyncio.run(start_async())
elif mode == "async-recover":
    print(json.dumps(engine.retrieve_workflow("acrash-1").get_result(timeout=60)), flush=True)
    engine.shutdown()
elif mode == "start":
    engine.start_workflow(crashy, 1, workflow_id="crash-1")
    time.sleep(600)
elif mode == "sleep-start":
    engine.start_workflow(sleepy, 3, workflow_id="sleep-1")
    time.sleep(600)
else:
    wid = "crash-1" if mode == "recover" else "sleep-1"
    print(json.dumps(engine.retrieve_workflow(wid).get_result(timeout=60)), flush=True)
    engine.shutdown()
