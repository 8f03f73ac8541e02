"""W8 (async workflows started from one event loop) and W6b (sync workflows waiting in
``ctx.recv``) of BENCH.md. Both report the process's threads and peak RSS: run them with
``--only`` (e.g. ``--only W2,W8``, to compare with W2 of the same run)."""

from __future__ import annotations

import asyncio
import resource
import threading
import time
from typing import Any

from bench import report, setup
from engine import Engine


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def w8_async(target: setup.Target, quick: bool) -> dict[str, Any]:
    """5,000 async workflows of 3 async steps (each awaits asyncio.sleep(0.01)), started
    concurrently from one event loop: time until all are done."""
    n = 1000 if quick else 5000
    engine = Engine("bench-w8", target.url, schema=target.schema)

    @engine.step(name="nap")
    async def nap(x: int) -> int:
        await asyncio.sleep(0.01)
        return x + 1

    @engine.workflow(name="async_three")
    async def async_three(ctx, x):
        return await nap(await nap(await nap(x)))

    engine.launch()
    progress = report.Progress("W8", n)
    peak_threads = 0

    async def one(i: int) -> None:
        handle = await engine.start_workflow_async(async_three, i)
        assert await handle.get_result_async() == i + 3
        progress.tick()

    async def main() -> float:
        nonlocal peak_threads
        await asyncio.gather(*(one(i) for i in range(20)))  # warm up
        started = time.perf_counter()
        done = asyncio.ensure_future(asyncio.gather(*(one(i) for i in range(n))))
        while not done.done():
            peak_threads = max(peak_threads, threading.active_count())
            await asyncio.sleep(0.05)
        await done
        return time.perf_counter() - started

    try:
        elapsed = asyncio.run(main())
    finally:
        engine.shutdown()
    return report.figures("W8", n, elapsed, threads=peak_threads, peak_rss_mb=_peak_rss_mb())


def w6b_waiting(target: setup.Target, quick: bool) -> dict[str, Any]:
    """10,000 sync workflows each blocked in ctx.recv: threads and peak RSS while they wait,
    then the time from sending all messages (16 sender threads) until all are done, and how
    long after the last send the last workflow finished."""
    n = 2000 if quick else 10_000
    engine = Engine("bench-w6b", target.url, schema=target.schema)

    @engine.workflow(name="receiver")
    def receiver(ctx, i):
        return [i, ctx.recv("go", timeout=600)]

    engine.launch()
    progress = report.Progress("W6b", n)
    try:
        handles = [engine.start_workflow(receiver, i) for i in range(n)]
        while engine.runtime.parked() < n:
            time.sleep(0.05)
        waiting_threads = threading.active_count()
        waiting_rss = _peak_rss_mb()
        senders = 16

        def send(k: int) -> None:
            for handle in handles[k::senders]:
                engine.send(handle.workflow_id, "go", "go")

        threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent = time.perf_counter() - started
        for i, handle in enumerate(handles):
            assert handle.get_result(timeout=600) == [i, "go"]
            progress.tick()
        elapsed = time.perf_counter() - started
    finally:
        engine.shutdown(timeout=1)
    return report.figures(
        "W6b",
        n,
        elapsed,
        threads=waiting_threads,
        peak_rss_mb=waiting_rss,
        send_seconds=round(sent, 3),
        done_after_last_send_s=round(elapsed - sent, 3),
    )
