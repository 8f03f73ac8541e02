"""The W11 application (WAYMARK_APP=bench.scaleout_app:build): workflow "five", five steps of
50 ms each, on queue "w11" whose global limit is WAYMARK_W11_LIMIT (default 100)."""

from __future__ import annotations

import os
import time

from engine import Engine

QUEUE = "w11"


def build(engine: Engine) -> None:
    engine.queue(QUEUE, concurrency=int(os.environ.get("WAYMARK_W11_LIMIT", "100")))

    @engine.step(name="nap")
    def nap(i: int) -> int:
        time.sleep(0.05)
        return i

    @engine.workflow(name="five")
    def five(ctx, n):  # type: ignore[no-untyped-def]
        return sum(nap(i) for i in range(5)) + n
