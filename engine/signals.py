"""In-process wake-ups by key ("msg:<id>", "evt:<id>", "stop:<id>", "done:<id>").

A waiter registers under its keys *before* checking the database, then sleeps on its event; a
fire between the check and the sleep is therefore never lost. Keys fire from this process
(a local send, cancel, finish) and, on Postgres, from other processes via LISTEN/NOTIFY.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class Signals:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}

    @contextlib.contextmanager
    def watch(self, *keys: str) -> Iterator[threading.Event]:
        event = threading.Event()
        with self._lock:
            for key in keys:
                self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                for key in keys:
                    waiters = self._waiters.get(key)
                    if waiters is not None:
                        waiters.discard(event)
                        if not waiters:
                            del self._waiters[key]

    def fire(self, key: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(key, ()))
        for event in waiters:
            event.set()
