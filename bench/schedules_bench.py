"""SCHED: managed schedules (python -m bench --db sqlite|postgres --only SCHED).

- pass: one scheduler pass over 100 schedules none of which is due (what every worker does
  about once a second), median ms, against the floor measured in the same run: the same
  SELECT of the schedules table issued bare with sqlite3 / psycopg;
- lag: how late a per-second schedule's runs are recorded after their tick (workflow
  created_at - tick), median ms over 10 ticks;
- backfill: starting 500 hourly ticks with backfill_schedule (each start recorded durably),
  per second."""

from __future__ import annotations

import datetime as dt
import sqlite3
import statistics
import threading
import time
from typing import Any

import psycopg

from bench import setup
from engine import Engine, scheduler
from engine import store as store_mod
from engine.wakeups import Wakeups

SELECT = (
    "SELECT name, workflow_name, cron, timezone, queue, paused, next_fire_at, last_fire_at "
    "FROM schedules ORDER BY name"
)


def _floor(target: setup.Target, n: int) -> float:
    times = []
    if target.backend == "sqlite":
        conn = sqlite3.connect(target.url.removeprefix("sqlite:///"))
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute(SELECT).fetchall()
            times.append(time.perf_counter() - t0)
        conn.close()
    else:
        with psycopg.connect(target.url, autocommit=True) as pg:
            pg.execute(f'SET search_path TO "{target.schema}"'.encode())
            for _ in range(n):
                t0 = time.perf_counter()
                pg.execute(SELECT.encode()).fetchall()
                times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def sched(target: setup.Target, quick: bool) -> dict[str, Any]:
    engine = Engine("bench-sched", target.url, schema=target.schema, metrics=False)

    @engine.workflow(name="tick")
    def tick(ctx: Any, when: dt.datetime) -> str:
        return when.isoformat()

    engine.launch()
    for i in range(100):
        engine.create_schedule(f"s{i:03d}", tick, "0 0 1 1 *")
    passes = 50 if quick else 200
    st = store_mod.connect(target.url, target.schema, None)
    loop = scheduler.Scheduler(
        st, Wakeups(st), lambda *a: None, lambda name: True, threading.Event()
    )
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        loop.run_once()
        times.append(time.perf_counter() - t0)
    pass_ms = statistics.median(times) * 1000
    floor_ms = _floor(target, passes)
    st.close()

    engine.create_schedule("every-second", tick, "* * * * * *")
    runs = 5 if quick else 10
    deadline = time.monotonic() + 60
    found: list[Any] = []
    while len(found) < runs and time.monotonic() < deadline:
        time.sleep(0.2)
        found = engine.list_workflows(workflow_id_prefix="every-second@", limit=runs)
    engine.pause_schedule("every-second")
    lags = [
        (w.created_at - dt.datetime.fromisoformat(w.workflow_id.split("@", 1)[1])).total_seconds()
        * 1000
        for w in found
    ]

    n = 100 if quick else 500
    engine.create_schedule("hourly", tick, "0 * * * *")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    t0 = time.perf_counter()
    handles = engine.backfill_schedule("hourly", start, start + dt.timedelta(hours=n))
    seconds = time.perf_counter() - t0
    for h in handles:
        h.get_result(timeout=120)
    engine.shutdown()
    return {
        "workload": "SCHED",
        "n": n,
        "seconds": round(seconds, 3),
        "per_sec": round(n / seconds, 1),
        "ms_each": round(seconds / n * 1000, 3),
        "pass_ms_100_schedules": round(pass_ms, 3),
        "pass_floor_ms": round(floor_ms, 3),
        "pass_vs_floor": round(pass_ms / floor_ms, 2),
        "tick_lag_ms_median": round(statistics.median(lags), 1) if lags else None,
    }
