"""What wakes the worker loop (engine/worker.py), on both backends.

The loop's poll interval is stretched to an hour here, so anything that happens within a test
happened because of a wake-up, not a poll: a thread freed while a queue's work is held back
must start that work at once, and a run ending while nothing is held back must not wake the
loop at all (it used to: one thread hand-off per workflow, for a pass that claims nothing).
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from engine import Engine, signals
from engine import worker as worker_mod
from engine.wakeups import Wakeups
from tests.support import wait_until

HOUR = 3600.0
LONG = 300.0  # a wait that a message must cut short


@pytest.fixture
def hourly_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every worker made from here on polls once an hour."""
    init = worker_mod.Worker.__init__

    def patient_init(self: worker_mod.Worker, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.poll_interval = HOUR

    monkeypatch.setattr(worker_mod.Worker, "__init__", patient_init)


def test_a_freed_thread_starts_the_work_its_queue_held_back(make_engine, hourly_polls) -> None:
    engine: Engine = make_engine()
    one_at_a_time = engine.queue("single", worker_concurrency=1)

    @engine.workflow(name="quick")
    def quick(ctx, x):
        return x * 2

    engine.launch()
    handles = [engine.start_workflow(quick, i, queue=one_at_a_time) for i in range(4)]
    # Each ending run frees the queue's one slot; only that wake-up can start the next.
    assert [h.get_result(timeout=30) for h in handles] == [0, 2, 4, 6]


def test_runs_ending_with_nothing_held_back_leave_the_worker_asleep(
    make_engine, hourly_polls, monkeypatch
) -> None:
    """The worker watches FREED only while a queue holds work back: otherwise every run ending
    here would wake it for nothing (it would find no reason for a pass and sleep again)."""
    watched: list[tuple[str, ...]] = []
    watch = Wakeups.watch

    def recording_watch(self: Wakeups, *keys: str) -> Any:
        if threading.current_thread().name == "waymark-worker":
            watched.append(keys)
        return watch(self, *keys)

    monkeypatch.setattr(Wakeups, "watch", recording_watch)
    engine: Engine = make_engine()
    one_at_a_time = engine.queue("single", worker_concurrency=1)

    @engine.workflow(name="direct")
    def direct(ctx, x):
        return x + 1

    engine.launch()
    assert [engine.start_workflow(direct, i).get_result(timeout=30) for i in range(5)] == [
        1, 2, 3, 4, 5,
    ]  # fmt: skip
    assert watched and all(signals.FREED not in keys for keys in watched)
    assert all(signals.ENQUEUED in keys for keys in watched)
    # A queue that filled its room: now a freed thread is worth a wake-up.
    handles = [engine.start_workflow(direct, i, queue=one_at_a_time) for i in range(3)]
    assert [h.get_result(timeout=30) for h in handles] == [1, 2, 3]
    assert any(signals.FREED in keys for keys in watched)


def test_a_workflow_parking_frees_its_thread_for_queued_work(make_engine, hourly_polls) -> None:
    """One workflow thread: a queued workflow starts when the one holding the thread parks
    (waits for a message without a thread), not at the next poll an hour later."""
    engine: Engine = make_engine(max_workflow_threads=1)
    jobs = engine.queue("jobs")

    @engine.workflow(name="waiter")
    def waiter(ctx):
        return ctx.recv("go", timeout=LONG)

    @engine.workflow(name="quick")
    def quick(ctx, x):
        return x * 2

    engine.launch()
    parked = engine.start_workflow(waiter, queue=jobs)
    queued = [engine.start_workflow(quick, i, queue=jobs) for i in range(3)]
    assert [h.get_result(timeout=30) for h in queued] == [0, 2, 4]
    engine.send(parked.workflow_id, "now", topic="go")
    assert parked.get_result(timeout=30) == "now"


def claims_made(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> list[str]:
    """The queues the worker loop claims from, in order, from here on."""
    queues = engine._parts.store.queues
    dequeue = queues.dequeue
    claimed: list[str] = []

    def recording_dequeue(queue_name: str, *args: Any, **kwargs: Any) -> Any:
        claimed.append(queue_name)
        return dequeue(queue_name, *args, **kwargs)

    monkeypatch.setattr(queues, "dequeue", recording_dequeue)
    return claimed


def test_an_enqueue_claims_from_its_own_queue_only(make_engine, hourly_polls, monkeypatch) -> None:
    """A claim is a write: a worker serving several queues used to claim from every one of
    them (and the internal queue) after each enqueue anywhere."""
    engine: Engine = make_engine()
    first, second = engine.queue("first"), engine.queue("second")

    @engine.workflow(name="double")
    def double(ctx, x):
        return x * 2

    engine.launch()  # its first pass claims from every queue (and the internal one)
    worker = engine._worker
    assert worker is not None
    wait_until(lambda: len(worker._next_poll) == 3, 30, "the first pass")
    claimed = claims_made(monkeypatch, engine)
    assert engine.start_workflow(double, 1, queue=first).get_result(timeout=30) == 2
    assert engine.start_workflow(double, 2, queue=second).get_result(timeout=30) == 4
    assert engine.start_workflow(double, 3, queue=first).get_result(timeout=30) == 6
    assert [q for q, _ in itertools.groupby(claimed)] == ["first", "second", "first"]


def test_a_delayed_workflow_is_claimed_in_the_pass_that_enqueues_it(
    make_engine, hourly_polls
) -> None:
    engine: Engine = make_engine()
    later, other = engine.queue("later"), engine.queue("other")

    @engine.workflow(name="triple")
    def triple(ctx, x):
        return x * 3

    engine.launch()
    worker, wakeups = engine._worker, engine._parts.wakeups
    assert worker is not None
    handle = engine.start_workflow(triple, 5, queue=later, delay=0.2)
    # Its start woke a claim of its queue, which found it still DELAYED.
    wait_until(
        lambda: worker._claimed_upto.get(later.name) == wakeups.enqueued_on(later.name),
        30,
        "the claim at its start",
    )
    time.sleep(0.25)  # its delay is over: the next promotion enqueues it
    worker._next_promotion = 0.0  # due now (hourly otherwise)
    # A wake-up for another queue: the pass promotes the delayed workflow, and only the
    # promotion's own wake-up makes its queue worth a claim (no poll for an hour).
    wakeups.fire(signals.enqueued_key(other.name))
    assert handle.get_result(timeout=30) == 15


def test_claiming_passes_are_at_least_the_gap_apart(make_engine, hourly_polls, monkeypatch) -> None:
    """Enqueues one after another each woke the loop for a claim of one workflow; passes at
    most every CLAIM_GAP_S claim what came meanwhile together."""
    passes: list[float] = []
    run_once = worker_mod.Worker.run_once

    def timed_run_once(self: worker_mod.Worker) -> int:
        passes.append(time.monotonic())
        return run_once(self)

    monkeypatch.setattr(worker_mod.Worker, "run_once", timed_run_once)
    engine: Engine = make_engine()
    work = engine.queue("work")

    @engine.workflow(name="plus")
    def plus(ctx, x):
        return x + 1

    engine.launch()
    handles = [engine.start_workflow(plus, i, queue=work) for i in range(30)]
    assert [h.get_result(timeout=30) for h in handles] == list(range(1, 31))
    gaps = [b - a for a, b in itertools.pairwise(passes)]
    assert len(passes) > 1 and min(gaps) >= worker_mod.CLAIM_GAP_S


def test_work_held_back_by_a_pass_without_room_starts_when_a_thread_frees(
    make_engine, hourly_polls
) -> None:
    """The pass that found no room did not watch FREED (nothing was held back before it): the
    loop must pass again, watching it, or the work waits for the poll."""
    engine: Engine = make_engine(max_workflow_threads=1)
    work = engine.queue("work")
    release = threading.Event()

    @engine.workflow(name="hold")
    def hold(ctx):
        ctx.run_step(release.wait)
        return "held"

    @engine.workflow(name="after")
    def after(ctx):
        return "after"

    engine.launch()
    holding = engine.start_workflow(hold)  # takes the one thread, here and now
    waiting = engine.start_workflow(after, queue=work)  # its claim finds no room
    worker = engine._worker
    assert worker is not None
    wait_until(lambda: worker._more.get(work.name), 30, "the claim without room")
    release.set()
    assert holding.get_result(timeout=30) == "held"
    assert waiting.get_result(timeout=30) == "after"
