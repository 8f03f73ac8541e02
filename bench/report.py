"""How a workload reports: a progress line while it runs, and its figures when done."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any


class Progress:
    """A one-line progress bar on stderr for runs that take a while."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self._lock = threading.Lock()
        self._shown = 0.0
        self.enabled = sys.stderr.isatty()

    def tick(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.enabled and (now - self._shown > 0.2 or self.done == self.total):
                self._shown = now
                width = 30
                filled = int(width * self.done / self.total)
                sys.stderr.write(
                    f"\r{self.label:<4} [{'#' * filled}{'.' * (width - filled)}] "
                    f"{self.done}/{self.total}"
                )
                if self.done == self.total:
                    sys.stderr.write("\r" + " " * (width + 30) + "\r")
                sys.stderr.flush()


def figures(workload: str, n: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "workload": workload,
        "n": n,
        "seconds": round(seconds, 4),
        "per_sec": round(n / seconds, 1),
        "ms_each": round(seconds / n * 1000, 4),
        **extra,
    }
