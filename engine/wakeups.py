"""Waiting for a change made here or by another process: in-process signals, the one thread
that LISTENs for other processes' NOTIFYs (Postgres), and polling as the safety net."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from engine import signals
from engine.signals import Signals
from engine.store import Store

T = TypeVar("T")
S = TypeVar("S", bound=signals.Settable)

QUEUE_KEY = signals.enqueued_key("")  # the prefix of every queue's own enqueue key


class Wakeups:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._signals = Signals()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        # How often a waiter re-reads the database for changes made by other processes.
        self.poll_interval = store.poll_interval
        # How many times ENQUEUED (any queue) and each queue's key fired: the worker loop tells
        # an enqueue from other wake-ups, and which queues are worth a claim.
        self.enqueues = 0
        self._broadcast_enqueues = 0  # ENQUEUED itself: work may wait on any queue
        self._enqueues_on: dict[str, int] = {}
        self._count_lock = threading.Lock()  # fired from many threads: no count may be lost

    def fire(self, key: str) -> None:
        if key == signals.ENQUEUED or key.startswith(QUEUE_KEY):
            with self._count_lock:
                self.enqueues += 1
                if key == signals.ENQUEUED:
                    self._broadcast_enqueues += 1
                else:
                    queue_name = key[len(QUEUE_KEY) :]
                    self._enqueues_on[queue_name] = self._enqueues_on.get(queue_name, 0) + 1
        self._signals.fire(key)

    def enqueued_on(self, queue_name: str) -> int:
        """How many wake-ups may have put work on ``queue_name`` so far (its own, and every
        queue's): a claiming loop claims from it again only when this changed (or by poll)."""
        with self._count_lock:
            return self._broadcast_enqueues + self._enqueues_on.get(queue_name, 0)

    def watch(self, *keys: str) -> contextlib.AbstractContextManager[threading.Event]:
        """An event set whenever one of ``keys`` fires (register before checking)."""
        return self._signals.watch(*keys)

    def watch_with(self, event: S, *keys: str) -> contextlib.AbstractContextManager[S]:
        """Like ``watch``, setting ``event`` (an async workflow's wake-up) instead."""
        return self._signals.watch_with(event, *keys)

    def listen(self) -> None:
        """Start delivering other processes' wake-ups (once; where the database pushes them)."""
        if self._listener is not None or not self._store.pushes_changes:
            return
        with self._lock:
            if self._listener is None and not self._closing.is_set():
                self._listener = threading.Thread(
                    target=self._store.listen,
                    args=(self.fire, self._closing),
                    name="waymark-listen",
                    daemon=True,
                )
                self._listener.start()

    def wait_for(
        self, timeout: float | None, keys: Sequence[str], check: Callable[[], T | None]
    ) -> T | None:
        """Call ``check()`` until it returns non-None, waking on ``keys``; None on timeout."""
        self.listen()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.watch(*keys) as woken:
            while True:
                found = check()
                if found is not None:
                    return found
                wait = self.poll_interval
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    wait = min(wait, remaining)
                woken.wait(wait)
                woken.clear()

    def close(self) -> None:
        """Stop listening (the listener notices within its poll)."""
        self._closing.set()
