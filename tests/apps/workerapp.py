"""A worker application for the multi-process tests.

As a module: ``build(engine)`` registers its workflows and queues (WAYMARK_APP for runworker).
As a program: ``python -m tests.apps.workerapp URL SCHEMA LEDGER EXECUTOR_ID [HEARTBEAT_S]`` runs a
worker until SIGTERM. Steps append lines to the LEDGER file (WAYMARK_TEST_LEDGER for
runworker) so tests can see who ran what, and when.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time

from engine import Engine

LEDGER = os.environ.get("WAYMARK_TEST_LEDGER", "")


def ledger(*fields: object) -> None:
    line = " ".join(str(f) for f in fields) + "\n"
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: atomic between processes
    finally:
        os.close(fd)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def build(engine: Engine) -> None:
    executor = engine.executor_id
    engine.queue("limited", concurrency=2, worker_concurrency=1)

    @engine.step(name="work")
    def work(workflow_id: str) -> str:
        ledger("start", workflow_id, executor, now_ms())
        time.sleep(0.2)
        ledger("end", workflow_id, executor, now_ms())
        return executor

    @engine.workflow(name="tracked")
    def tracked(ctx, x):
        return work(ctx.workflow_id)

    @engine.step(name="slow_step")
    def slow_step(workflow_id: str, i: int) -> int:
        ledger("step", workflow_id, i, executor, now_ms())
        time.sleep(0.1)
        return i

    @engine.workflow(name="slowsteps")
    def slowsteps(ctx, n):
        return sum(slow_step(ctx.workflow_id, i) for i in range(n))

    @engine.workflow(name="gated")
    def gated(ctx, n):
        """n steps, then wait (durably) for a "go" message, then n more: cancellable for sure
        however fast or slow the machine is."""
        before = sum(slow_step(ctx.workflow_id, i) for i in range(n))
        ctx.recv("go", timeout=3600)
        return before + sum(slow_step(ctx.workflow_id, i) for i in range(n, 2 * n))

    @engine.workflow(name="showcase_child")
    def showcase_child(ctx, n):
        return [slow_step(ctx.workflow_id, i) for i in range(n)]

    @engine.workflow(name="showcase")
    def showcase(ctx, hours):
        # Something of everything for the console's detail page: steps, a child, an event,
        # then a durable sleep of `hours` (parked: the page says until when).
        slow_step(ctx.workflow_id, 0)
        ctx.start_workflow(showcase_child, 3).get_result()
        ctx.set_event("stage", "napping")
        ctx.sleep(hours * 3600)
        return "rested"

    @engine.step(name="chaos_step")
    def chaos_step(workflow_id: str, i: int) -> int:
        ledger("chaos", workflow_id, i, executor, now_ms())
        time.sleep(0.002)
        return i

    @engine.workflow(name="chaos5")
    def chaos5(ctx, x):
        return [chaos_step(ctx.workflow_id, i) for i in range(1, 6)]

    @engine.step(name="async_step")
    async def async_step(workflow_id: str, i: int) -> int:
        ledger("step", workflow_id, i, executor, now_ms())
        await asyncio.sleep(0.05)
        return i

    @engine.workflow(name="async_steps")
    async def async_steps(ctx, n):
        """n async steps, two at a time (their IDs taken at the call), then a durable sleep."""
        total = 0
        for i in range(0, n, 2):
            pair = [async_step(ctx.workflow_id, j) for j in range(i, min(i + 2, n))]
            total += sum(await asyncio.gather(*pair))
        await ctx.sleep_async(0.1)
        return total

    @engine.step(name="record_tick")
    def record_tick(tick: str) -> None:
        ledger("tick", tick, executor, now_ms())

    @engine.workflow(name="ticker", schedule=os.environ.get("WAYMARK_TEST_SCHEDULE", "* * * * * *"))
    def ticker(ctx, tick):
        record_tick(tick.isoformat())
        return tick.isoformat()


if __name__ == "__main__":
    url, schema, LEDGER, executor_id = sys.argv[1:5]
    heartbeat = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
    engine = Engine(
        "workerapp", url, schema=schema, executor_id=executor_id, heartbeat_timeout=heartbeat
    )
    build(engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine.run_forever(stop, grace=5)
