"""The engine's wall clock: epoch milliseconds, the unit of every stored time."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
