"""W11, scale-out: python -m bench.scaleout [--n 1000] [--limits 10,100] [--repeat 3]

1,000 workflows of five 50 ms steps on a queue with a global limit (10, then 100), Postgres:
local ``manage.py runworker --concurrency 12`` against ``runworker --dispatch celery`` with 1 and
with 3 ``celery -A console worker --concurrency 4`` processes (3 x 4: the same 12 slots), on a
private Redis broker (a throwaway redis-server on a free port; the shared one is never used).
Every process is started and ready before the workflows are enqueued; the clock runs from the
first enqueue to the last SUCCESS. Prints one JSON line per run, then medians and the ratios
of the bar (BENCH.md): 3 Celery workers >= 0.9x local at both limits, >= 2x one worker at 100.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import setup
from engine import Client
from tests.services import private_redis

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"local": 0, "celery-1": 1, "celery-3": 3}


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait(check: Any, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"W11: {what} not within {limit} s")
        time.sleep(0.05)


def _ready(target: setup.Target) -> bool:
    """The local worker or the dispatcher heartbeats (its tables exist by then)."""
    try:
        return setup.count(target, "SELECT count(*) FROM executors") >= 1
    except Exception:
        return False


def run(config: str, limit: int, n: int, broker_url: str, folder: Path) -> dict[str, Any]:
    workers = CONFIGS[config]
    with setup.fresh_database("postgres") as target:
        env = {
            **os.environ,
            "WAYMARK_DATABASE_URL": target.url,
            "WAYMARK_SCHEMA": target.schema,
            "WAYMARK_APP": "bench.scaleout_app:build",
            "WAYMARK_APP_NAME": "w11",
            "WAYMARK_W11_LIMIT": str(limit),
            "WAYMARK_CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": f"sqlite:///{folder / 'django.sqlite3'}",
        }
        manage = [sys.executable, "manage.py", "runworker", "--executor-id", "w11-main"]
        logs = []
        if workers == 0:
            procs = [_spawn([*manage, "--concurrency", "12"], env, folder / "local.log")]
        else:
            procs = [_spawn([*manage, "--dispatch", "celery"], env, folder / "dispatcher.log")]
            celery = str(Path(sys.executable).with_name("celery"))
            for i in range(workers):
                log = folder / f"celery-{i}.log"
                logs.append(log)
                args = [celery, "-A", "console", "worker", "-c", "4", "-n", f"w{i}@%h"]
                args += ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
                procs.append(_spawn(args, env, log))
        try:
            _wait(
                lambda: (
                    _ready(target) and all("action=celery.ready" in p.read_text() for p in logs)
                ),
                120,
                "every process ready",
            )
            with Client(target.url, schema=target.schema) as client:
                began = time.monotonic()
                for _ in range(n):
                    client.start_workflow("five", 1, queue="w11")
            done_sql = "SELECT count(*) FROM workflow_status WHERE status = 'SUCCESS'"
            _wait(lambda: setup.count(target, done_sql) >= n, 1200, f"{n} workflows done")
            seconds = time.monotonic() - began
        finally:
            for proc in procs:
                _stop(proc)
    return {"workload": "W11", "config": config, "limit": limit, "n": n,
            "seconds": round(seconds, 3), "per_sec": round(n / seconds, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--limits", default="10,100")
    parser.add_argument("--configs", default="local,celery-1,celery-3")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    medians: dict[tuple[str, int], float] = {}
    with private_redis() as (broker_url, _), tempfile.TemporaryDirectory() as tmp:
        for limit in (int(x) for x in args.limits.split(",")):
            for config in args.configs.split(","):
                rates = []
                for i in range(args.repeat):
                    folder = Path(tmp) / f"{config}-{limit}-{i}"
                    folder.mkdir()
                    figures = run(config, limit, args.n, broker_url, folder)
                    print(json.dumps(figures), flush=True)
                    rates.append(figures["per_sec"])
                medians[(config, limit)] = statistics.median(rates)
    print()
    print(f"{'limit':>5} {'local':>8} {'celery-1':>9} {'celery-3':>9} {'3/local':>8} {'3/1':>6}")
    for limit in sorted({lim for _, lim in medians}):
        local, one, three = (medians.get((c, limit), float("nan")) for c in CONFIGS)
        print(
            f"{limit:>5} {local:>8.1f} {one:>9.1f} {three:>9.1f} "
            f"{three / local:>8.2f} {three / one:>6.2f}"
        )


if __name__ == "__main__":
    main()
