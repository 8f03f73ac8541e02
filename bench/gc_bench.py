"""GC: garbage collection of many finished workflows (rows deleted per second), and W2 while it
runs against W2 alone (python -m bench --db postgres --only GC; WAYMARK_BENCH_GC_ROWS sets the
count, default 1,000,000).

Seeds N finished three-step workflows straight into the system tables (one row each in
workflow_status, three in operation_outputs), completed a day ago; measures W2 alone (quick
runs, several, before the collection and again after it, so a machine that got busier or
quieter meanwhile shows up on both sides); then runs garbage_collect(older_than=3600) in a
thread while quick W2 runs follow one another, and reports the medians of both (a W2 run that
was still going when the collection ended is not counted), so the slowdown is not one noisy
sample against another."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench import setup
from engine import Client, Engine

SEED_CHUNK = 50_000
ALONE_RUNS = 5  # quick W2 runs before the collection, and as many after it


def _seed(target: setup.Target, n: int) -> None:
    # The tables exist once an engine launched there.
    Engine("bench-gc-seed", target.url, schema=target.schema, metrics=False).launch()
    day_ago = int(time.time() * 1000) - 86_400_000
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{target.schema}"'.encode())
        for start in range(0, n, SEED_CHUNK):
            end = min(n, start + SEED_CHUNK)
            conn.execute(
                "INSERT INTO workflow_status (workflow_uuid, status, name, inputs, output, "
                "executor_id, application_version, created_at, updated_at, completed_at) "
                "SELECT 'gc-' || i, 'SUCCESS', 'three_steps', '[[1], {}]', '4', 'seed', 'v', "
                "%s, %s, %s FROM generate_series(%s, %s) AS i",
                (day_ago, day_ago, day_ago, start, end - 1),
            )
            conn.execute(
                "INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, "
                "output) SELECT 'gc-' || i, s, 'noop', '2' "
                "FROM generate_series(%s, %s) AS i, generate_series(1, 3) AS s",
                (start, end - 1),
            )
        conn.execute(b"ANALYZE workflow_status")
        conn.execute(b"ANALYZE operation_outputs")


def gc_with_w2(
    target: setup.Target, quick: bool, w2: Callable[[setup.Target, bool], dict[str, Any]]
) -> dict[str, Any]:
    if target.backend != "postgres":
        raise SystemExit("the GC benchmark is for Postgres (--db postgres)")
    n = 20_000 if quick else int(os.environ.get("WAYMARK_BENCH_GC_ROWS", "1000000"))
    started = time.perf_counter()
    _seed(target, n)
    seeded_s = time.perf_counter() - started

    def alone_runs() -> list[float]:
        return [w2(target, True)["per_sec"] for _ in range(ALONE_RUNS)]

    alone = alone_runs()
    done = threading.Event()
    result: dict[str, float] = {}

    def collect() -> None:
        with Client(target.url, schema=target.schema) as client:
            t0 = time.perf_counter()
            result["deleted"] = client.garbage_collect(older_than=3600)
            result["seconds"] = time.perf_counter() - t0
        done.set()

    gc_thread = threading.Thread(target=collect)
    gc_thread.start()
    during: list[float] = []
    while not done.is_set():
        figure = w2(target, True)["per_sec"]
        if not done.is_set():  # this run was entirely inside the collection
            during.append(figure)
    gc_thread.join()
    alone += alone_runs()
    alone_median = statistics.median(alone)
    during_median = statistics.median(during) if during else float("nan")
    return {
        "workload": "GC",
        "n": n,
        "seconds": round(result["seconds"], 3),
        "per_sec": round(result["deleted"] / result["seconds"], 1),
        "ms_each": round(result["seconds"] * 1000 / max(result["deleted"], 1), 4),
        "deleted": result["deleted"],
        "seed_seconds": round(seeded_s, 1),
        "w2_alone_per_sec": round(alone_median, 1),
        "w2_alone_runs": len(alone),
        "w2_during_gc_per_sec": round(during_median, 1),
        "w2_during_gc_runs": len(during),
        "w2_slowdown_pct": round(100 * (1 - during_median / alone_median), 1),
    }
