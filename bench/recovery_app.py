"""W5's application: 3-step workflows whose step 2 hangs in the victim process.

``python -m bench.recovery_app URL SCHEMA N`` is the victim: it starts N workflows and hangs
in step 2 of each until it is SIGKILLed. The benchmark then starts a new worker (same
executor ID, same code, hence the same application version) and times the recovery.
"""

from __future__ import annotations

import os
import sys
import threading

from engine import Engine

EXECUTOR = "w5-worker"


def build(engine: Engine) -> None:
    hang = os.environ.get("WAYMARK_W5_HANG") == "1"

    @engine.step(name="one")
    def one(x: int) -> int:
        return x + 1

    @engine.step(name="two")
    def two(x: int) -> int:
        if hang:
            threading.Event().wait()  # in flight when the worker is killed
        return x + 1

    @engine.workflow(name="w5")
    def w5(ctx, x):
        return one(two(one(x)))


if __name__ == "__main__":
    url, schema, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = Engine(
        "bench-w5", url, schema=schema, executor_id=EXECUTOR, max_workflow_threads=n + 8
    )  # every one in flight at once
    build(engine)
    engine.launch()
    for i in range(n):
        engine.start_workflow("w5", i, workflow_id=f"w5-{i}")
    print("started", flush=True)
    threading.Event().wait()
