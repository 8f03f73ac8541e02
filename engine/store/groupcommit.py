"""Group commit: many threads' writes committed together in one transaction.

Each write is its own durable commit from the caller's point of view (``submit`` returns only
after the transaction holding it committed), but concurrent writers share one commit (one
fsync). A caller that finds no commit in flight leads: it commits its write, and whatever was
queued meanwhile, on its own thread with no hand-off at all (the serial case). Callers
arriving while a commit is in flight queue up and wait.

When a leader's batch is done and writes are queued, the next batch needs a leader. By
default the leader hands its slot to the oldest waiting thread, which leads the next batch
when it is woken. With ``relay`` it relays the queue to the committer thread instead and
returns to its own work: the committer leads batch after batch while writes keep coming, and
ends when the queue is empty. Under load (W2: 16 threads, a commit always in flight) one
thread thus runs every commit back to back: on Postgres, where a batch is a round trip, the
woken thread had to be scheduled, and take the GIL behind the writers the batch had just woken,
before the next batch could start (a quarter of W2's time had no commit in flight; with the
relay, 5 %). On SQLite the batch is an fsync in this process, and the pause while the next
leader wakes lets more writes join it: there the hand-off did better (W2 1.33x the floor
against 1.18x with the relay, three interleaved pairs).

How many leaders may commit at once is the backend's choice (``leaders``). SQLite has one
writer, so one. On Postgres, with one leader, every write waited for the commit in flight and
then for its own: about 1.5 commit latencies per write. When the disk is slow (a busy server:
one fsync measured 5-6 ms, against 0.7 ms of CPU for a batch of ten) that serialized W2
behind one fsync at a time, while the bare-writes floor keeps 16 commits in flight whose WAL
flushes Postgres merges. So a writer that has waited ``hedge_s`` and is still queued leads a
batch of its own beside the one in flight (up to ``leaders`` at once, each on its own
connection), taking the queue with it. When commits are quick they return within the hedge
and writes keep sharing one commit (bigger batches, less CPU per write); when they are slow,
several are in flight. Concurrent batches never order writes that matter to each other: each
writer waits for its own commit before it writes again; a deadlock between two batches is a
transient error and the batch is retried.

Async callers (``submit_async``) wait without a thread: their write joins the same queue and
the committing thread resolves their futures on their event loop, one ``call_soon_threadsafe``
per loop and batch (each is a write to the loop's self-pipe, a system call under the GIL).
When no commit is in flight, an async write starts a committer thread. While more than one
batch of writes is queued (thousands of async writes at once), another committer thread
commits beside the running one, up to ``leaders``.

A write is one or more statements that must commit together (e.g. record a step and delete
the message it consumed); its statements run in order, inside the batch's transaction.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.threads import Latch

# (query name, parameters)
Statement = tuple[str, Mapping[str, Any]]
Rows = list[Any]
# Executes writes in one transaction and returns, per write, each statement's rows; or raises.
BatchExecutor = Callable[[Sequence[Sequence[Statement]]], list[list[Rows]]]

MAX_BATCH = 512


class _Write:
    __slots__ = ("error", "future", "leads", "results", "statements", "woken")

    def __init__(
        self, statements: Sequence[Statement], future: asyncio.Future[None] | None = None
    ) -> None:
        self.statements = statements
        self.future = future  # an async write: resolved on its loop (no thread waits on it)
        self.woken = Latch()
        self.results: list[Rows] = []
        self.error: BaseException | None = None
        self.leads = False  # woken to lead the next batch (with this write), not done

    def outcome(self) -> list[Rows]:
        if self.error is not None:
            raise self.error
        return self.results


class GroupCommitter:
    def __init__(
        self,
        execute: BatchExecutor,
        splittable: Callable[[BaseException], bool] = lambda exc: True,
        on_batch: Callable[[int], None] = lambda size: None,
        leaders: int = 1,
        hedge_s: float | None = None,
        relay: bool = False,
    ) -> None:
        if leaders < 1:
            raise ValueError(f"leaders must be >= 1 (commits in flight at once), got {leaders}")
        self._execute = execute
        self._on_batch = on_batch  # told each batch's size (metrics)
        # Whether a failed batch is worth retrying write by write (a bad statement), or the
        # failure is everyone's (the database is unreachable): then all get the error.
        self._splittable = splittable
        self._mutex = threading.Lock()
        self._queue: list[_Write] = []
        self._max_leaders = leaders
        self._leaders = 0  # batches being committed now (each by one leader)
        self._hedge_s = hedge_s
        self._relays = relay  # the next batch: the committer thread's, or a waiting thread's
        self._committers = 0  # committer threads running (see _relay)

    def submit(self, statements: Sequence[Statement]) -> list[Rows]:
        """Commit the statements (together, in order); returns each one's rows."""
        write = _Write(statements)
        with self._mutex:
            lead = self._leaders == 0
            if lead:
                self._leaders += 1  # a leader's own write never enters the queue
            else:
                self._queue.append(write)
        if not lead and self._max_leaders > 1 and not write.woken.wait(self._hedge_s):
            lead = self._hedge(write)
        if not lead:
            write.woken.wait()
            if not write.leads:
                return write.outcome()
        following = self._lead(write)  # ours, and whatever was queued meanwhile
        if following is not None:
            self._hand_on(following)
        return write.outcome()

    async def submit_async(self, statements: Sequence[Statement]) -> list[Rows]:
        """``submit`` for a coroutine: waits on its event loop, holding no thread."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        write = _Write(statements, future)
        with self._mutex:
            lead = self._leaders == 0
            if lead:
                self._leaders += 1
            else:
                self._queue.append(write)
        if lead:
            self._relay(write)
        await future
        return write.outcome()

    def _hedge(self, write: _Write) -> bool:
        """The commit in flight is slow (waiting on the disk): rather than wait for it, lead
        a batch beside it if a slot is free and nobody took this write yet."""
        with self._mutex:
            if self._leaders >= self._max_leaders or write not in self._queue:
                return False
            self._queue.remove(write)
            self._leaders += 1
            return True

    def _hand_on(self, first: _Write) -> None:
        """Give the leader slot, with the oldest queued write, to whoever leads next."""
        if not self._to_its_thread(first):
            self._relay(first)

    def _to_its_thread(self, first: _Write) -> bool:
        """Without the relay, a waiting thread leads the batch of its own write: wake it to."""
        if first.future is not None or self._relays:
            return False
        first.leads = True
        first.woken.open()
        return True

    def _relay(self, first: _Write) -> None:
        """Hand ``first`` and the leader slot it holds to a committer thread. One that runs
        already takes the queue next anyway (give ``first`` back, and the slot), unless the
        queue is more than one batch: then another commits beside it (thousands of async
        writes: W8 halved its throughput with one committer thread)."""
        with self._mutex:
            if self._committers and len(self._queue) < MAX_BATCH:
                self._queue.insert(0, first)
                self._leaders -= 1
                return
            self._committers += 1
        self._start_committer(first)

    def _start_committer(self, first: _Write) -> None:
        threading.Thread(
            target=self._commit_on, args=(first,), name="waymark-commit", daemon=True
        ).start()

    def _commit_on(self, first: _Write) -> None:
        """A committer thread: lead while writes are queued and a slot is free."""
        following: _Write | None = first
        while following is not None:
            with self._mutex:  # more than this batch can take: another committer beside it
                extra = len(self._queue) >= MAX_BATCH and self._leaders < self._max_leaders
                if extra:
                    beside = self._queue.pop(0)
                    self._leaders += 1
                    self._committers += 1
            if extra:
                self._start_committer(beside)
            following = self._lead(following)
            if following is not None and self._to_its_thread(following):
                following = None  # without the relay, this thread stands in for async writes
            if following is None:
                with self._mutex:  # a relay that found us running may have queued meanwhile
                    if self._queue and self._leaders < self._max_leaders:
                        following = self._queue.pop(0)
                        self._leaders += 1
                    else:
                        self._committers -= 1

    def _lead(self, first: _Write) -> _Write | None:
        """Commit one batch; then the oldest queued write, which keeps this leader's slot
        for the next batch (None: the queue was empty, the slot is given up)."""
        with self._mutex:
            batch = [first, *self._queue[: MAX_BATCH - 1]]
            del self._queue[: MAX_BATCH - 1]
        following: _Write | None = None
        try:
            self._on_batch(len(batch))
        except Exception:  # metrics must never stop a commit (or the committer thread)
            pass
        try:
            self._run(batch)
        finally:
            with self._mutex:
                if self._queue:
                    following = self._queue.pop(0)
                else:
                    self._leaders -= 1
            futures: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for write in batch:
                if write.future is None:
                    write.woken.open()
                else:
                    futures.setdefault(write.future.get_loop(), []).append(write.future)
            for loop, settled in futures.items():
                try:
                    loop.call_soon_threadsafe(_resolve, settled)
                except RuntimeError:  # the loop closed: nobody awaits these writes any more
                    pass
        return following

    def _run(self, batch: list[_Write]) -> None:
        try:
            results = self._execute([w.statements for w in batch])
        except BaseException as exc:
            if len(batch) == 1 or not self._splittable(exc):
                for write in batch:
                    write.error = exc
                return
            # One bad write must not fail its neighbours: retry each in its own transaction
            # so the error lands on the write that caused it.
            for write in batch:
                try:
                    write.results = self._execute([write.statements])[0]
                except BaseException as single_exc:
                    write.error = single_exc
            return
        for write, result in zip(batch, results, strict=True):
            write.results = result


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    """On the futures' loop: wake the coroutines whose writes committed."""
    for future in futures:
        if not future.done():  # a cancelled awaiter
            future.set_result(None)
