"""The workloads W1-W3 of BENCH.md, each returning its figures as a dict."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench import console_w7, gc_bench, partitions, schedules_bench, setup, waits
from bench.cpu import CpuMeter
from bench.report import Progress, figures
from engine import Engine

# Whether the benchmark engines report worker metrics (python -m bench --metrics on|off|both).
METRICS = True


def _engine(
    target: setup.Target, name: str, threads: int = 16, queue: str | None = None
) -> tuple[Engine, Any]:
    """The benchmark app (launched): 3-step and n-step workflows of trivial steps."""
    engine = Engine(
        name, target.url, schema=target.schema, max_workflow_threads=threads, metrics=METRICS
    )
    if queue is not None:
        engine.queue(queue, worker_concurrency=threads)

    @engine.step(name="noop")
    def noop(x: int) -> int:
        return x + 1

    @engine.workflow(name="three_steps")
    def three_steps(ctx, x):
        return noop(noop(noop(x)))

    @engine.workflow(name="many_steps")
    def many_steps(ctx, n):
        value = 0
        for _ in range(n):
            value = noop(value)
        return value

    engine.launch()
    return engine, {"three": three_steps, "many": many_steps}


def w1_serial_latency(target: setup.Target, quick: bool) -> dict[str, Any]:
    n = 100 if quick else 300
    engine, wf = _engine(target, "bench-w1")
    try:
        for i in range(20):  # warm up connections and prepared statements
            engine.start_workflow(wf["three"], i).get_result()
        progress = Progress("W1", n)
        started = time.perf_counter()
        for i in range(n):
            assert engine.start_workflow(wf["three"], i).get_result() == i + 3
            progress.tick()
        elapsed = time.perf_counter() - started
    finally:
        engine.shutdown()
    return figures("W1", n, elapsed)


def w2_throughput(target: setup.Target, quick: bool) -> dict[str, Any]:
    with CpuMeter(_server(target)) as meter:
        found = _w2(target, quick, meter)
    return {**found, **meter.figures}


def _w2(target: setup.Target, quick: bool, meter: CpuMeter) -> dict[str, Any]:
    n, clients = (500 if quick else 2000), 16
    engine, wf = _engine(target, "bench-w2", threads=clients)
    try:
        for i in range(20):
            engine.start_workflow(wf["three"], i).get_result()
        progress = Progress("W2", n)
        per_client = n // clients

        def client(c: int) -> None:
            for i in range(per_client):
                engine.start_workflow(wf["three"], c * per_client + i).get_result()
                progress.tick()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        meter.start()
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        meter.stop(per_client * clients)
    finally:
        engine.shutdown()
    return figures("W2", per_client * clients, elapsed, clients=clients)


def w3_step_overhead(target: setup.Target, quick: bool) -> dict[str, Any]:
    workflows, steps = (10 if quick else 20), 50
    engine, wf = _engine(target, "bench-w3")
    try:
        engine.start_workflow(wf["many"], steps).get_result()
        progress = Progress("W3", workflows)
        started = time.perf_counter()
        for _ in range(workflows):
            assert engine.start_workflow(wf["many"], steps).get_result() == steps
            progress.tick()
        elapsed = time.perf_counter() - started
    finally:
        engine.shutdown()
    result = figures("W3", workflows, elapsed, steps_each=steps)
    result["ms_per_step"] = round(elapsed / (workflows * steps) * 1000, 4)
    return result


def w4_queue(target: setup.Target, quick: bool) -> dict[str, Any]:
    """Enqueue 2,000 three-step workflows on a queue (worker concurrency 16); time to done."""
    n = 500 if quick else 2000
    engine, wf = _engine(target, "bench-w4", threads=16, queue="work")
    progress = Progress("W4", n)
    try:
        started = time.perf_counter()
        handles = [engine.start_workflow(wf["three"], i, queue="work") for i in range(n)]
        for h in handles:
            h.get_result(timeout=600)
            progress.tick()
        elapsed = time.perf_counter() - started
    finally:
        engine.shutdown()
    return figures("W4", n, elapsed, worker_concurrency=16)


def w5_recovery(target: setup.Target, quick: bool) -> dict[str, Any]:
    """1,000 workflows left PENDING by a SIGKILLed worker (step 1 done, step 2 in flight):
    time from the new worker's start until all are SUCCESS."""
    import os
    import signal
    import subprocess

    from bench import recovery_app

    n = 300 if quick else 1000
    victim = subprocess.Popen(
        [sys.executable, "-m", "bench.recovery_app", target.url, target.schema, str(n)],
        env={**os.environ, "WAYMARK_W5_HANG": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert victim.stdout is not None and victim.stdout.readline().strip() == "started"
        while setup.count(target, "SELECT count(*) FROM operation_outputs") < n:
            time.sleep(0.05)  # every workflow has step 1 recorded and hangs in step 2
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    engine = Engine(
        "bench-w5",
        target.url,
        schema=target.schema,
        executor_id=recovery_app.EXECUTOR,
        max_workflow_threads=16,
    )
    recovery_app.build(engine)
    started = time.perf_counter()
    engine.launch()
    try:
        for i in range(n):
            engine.retrieve_workflow(f"w5-{i}").get_result(timeout=600)
        elapsed = time.perf_counter() - started
    finally:
        engine.shutdown()
    return figures("W5", n, elapsed)


def w6_parked_sleepers(target: setup.Target, quick: bool) -> dict[str, Any]:
    """10,000 workflows each in a 60 s durable sleep: the worker's threads and peak RSS."""
    import resource

    n = 2000 if quick else 10_000
    engine = Engine("bench-w6", target.url, schema=target.schema)

    @engine.workflow(name="sleeper")
    def sleeper(ctx, i):
        ctx.sleep(60)
        return i

    engine.launch()
    progress = Progress("W6", n)
    try:
        started = time.perf_counter()
        for i in range(n):
            engine.start_workflow(sleeper, i)
            progress.tick()
        while engine.runtime.parked() < n:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        threads = threading.active_count()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        engine.shutdown(timeout=1)  # the sleepers stay PENDING: recovery would resume them
    return figures("W6", n, elapsed, threads=threads, peak_rss_mb=round(rss_mb, 1))


def floor_serial(target: setup.Target, quick: bool) -> dict[str, Any]:
    n = 100 if quick else 300
    return figures("floor-serial", n, setup.floor(target.backend, n, 1))


def floor_concurrent(target: setup.Target, quick: bool) -> dict[str, Any]:
    n = 480 if quick else 2000
    with CpuMeter(_server(target)) as meter:
        seconds = setup.floor(target.backend, n, 16, meter)
    return figures("floor-16", n, seconds, clients=16, **meter.figures)


def _server(target: setup.Target) -> str | None:
    return target.url if target.backend == "postgres" else None


WORKLOADS: dict[str, Callable[[setup.Target, bool], dict[str, Any]]] = {
    "floor-serial": floor_serial,
    "floor-16": floor_concurrent,
    "W1": w1_serial_latency,
    "W2": w2_throughput,
    "W3": w3_step_overhead,
    "W4": w4_queue,
    "W5": w5_recovery,
    "W6": w6_parked_sleepers,
    "W7": console_w7.w7_console,
    "W8": waits.w8_async,
    "W6b": waits.w6b_waiting,
    "GC": lambda target, quick: gc_bench.gc_with_w2(target, quick, w2_throughput),
    "FAIR": partitions.w8_partition_fairness,
    "SCHED": schedules_bench.sched,
}
