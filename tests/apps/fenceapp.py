"""A worker process for the fencing tests (tests/acceptance/test_fencing.py).

Usage: python -m tests.apps.fenceapp URL SCHEMA LEDGER EXECUTOR_ID HEARTBEAT_S
Runs until SIGTERM. Workflow "ledgered"(n): n steps, each appending "step <workflow> <i>
<executor>" to LEDGER as it starts, then taking a moment. Logs go to stderr with their
``action=`` key. WAYMARK_TEST_CLOCK_OFFSET_S moves this process's Python clock (time.time,
time.time_ns, which the engine reads) that many seconds ahead: a worker whose clock is wrong,
without touching the machine's.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from engine import Engine

STEP_S = 0.25
OFFSET_S = float(os.environ.get("WAYMARK_TEST_CLOCK_OFFSET_S", "0"))
if OFFSET_S:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + OFFSET_S
    time.time_ns = lambda: _time_ns() + int(OFFSET_S * 1e9)


class ActionFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{super().format(record)} action={getattr(record, 'action', '-')}"


def main() -> None:
    url, schema, ledger_path, executor_id, heartbeat = sys.argv[1:6]

    def ledger(*fields: object) -> None:
        fd = os.open(ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (" ".join(map(str, fields)) + "\n").encode())  # atomic O_APPEND write
        finally:
            os.close(fd)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ActionFormatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger("waymark").addHandler(handler)
    logging.getLogger("waymark").setLevel(logging.INFO)

    engine = Engine(
        "fenceapp",
        url,
        schema=schema,
        executor_id=executor_id,
        heartbeat_timeout=float(heartbeat),
        application_version="fence-v1",
    )

    @engine.step(name="ledgered_step")
    def ledgered_step(workflow_id: str, i: int) -> int:
        ledger("step", workflow_id, i, executor_id)
        time.sleep(STEP_S)
        return i

    @engine.workflow(name="ledgered")
    def ledgered(ctx, n):  # type: ignore[no-untyped-def]
        return sum(ledgered_step(ctx.workflow_id, i) for i in range(n))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine.run_forever(stop, grace=2)


if __name__ == "__main__":
    main()
