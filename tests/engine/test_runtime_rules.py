"""The runtime's rules (engine/runtime.py), each checked through the engine on both backends:
the threads it names and counts, what its log lines carry (each record's ``action`` and
``workflow_id`` are a documented contract: JSON logs, issue 13), parking and waking,
deadlines, recovery counts, shutdown, and pausing when the database is lost.

A lost database is staged by making one store operation raise
``SystemDatabaseUnavailableError`` (what the store raises once its retries run out), and the
resume timer is replaced by a recorder that the test fires itself: the retry is then checked
without waiting 5 s and without a timed assertion.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import types
from collections.abc import Callable
from typing import Any

import pytest

from engine import (
    Client,
    Engine,
    MaxRecoveryAttemptsExceededError,
    Status,
    SystemDatabaseUnavailableError,
    WorkflowCancelledError,
    WorkflowFailedError,
)
from engine import runtime as runtime_mod
from tests.engine.test_recovery import rewind
from tests.support import wait_until

LONG = 300.0  # a wait that something else (a message, a cancel, shutdown) must cut short


def capture_logs(caplog: pytest.LogCaptureFixture, level: int) -> None:
    """Capture the engine's log lines from here on: what was logged before (an earlier engine's
    launch, when an earlier test left the logger at INFO) is dropped."""
    caplog.set_level(level, logger="waymark")
    caplog.clear()


def records(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) == action]


def engine_threads(prefix: str) -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(prefix))


def await_in_thread(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, handle: Any, release: threading.Event
) -> tuple[threading.Thread, list[object]]:
    """Await ``handle`` on a thread of its own; ``release`` is set once that awaiter has found
    the workflow's run here (so it is awaited through the run, not the database)."""
    workflow_id = handle.workflow_id
    runs = engine.runtime._runs
    find = runs.get

    def found_then_release(wanted: str) -> Any:
        run = find(wanted)
        if threading.current_thread().name == "awaiter" and wanted == workflow_id:
            release.set()
        return run

    monkeypatch.setattr(runs, "get", found_then_release)
    got: list[object] = []

    def wait() -> None:
        try:
            got.append(handle.get_result(timeout=60))
        except Exception as exc:
            got.append(exc)

    awaiter = threading.Thread(target=wait, name="awaiter")
    awaiter.start()
    return awaiter, got


# -- threads and counts --------------------------------------------------------------------------


def test_threads_are_named_after_the_app(make_engine) -> None:
    """Workflow threads, the timer thread, the engine's loop and its I/O threads carry the
    app's name: what a thread dump (py-spy, faulthandler) shows."""
    engine: Engine = make_engine("named")

    @engine.workflow(name="where")
    def where(ctx) -> str:
        return threading.current_thread().name

    @engine.workflow(name="where_async")
    async def where_async(ctx) -> str:
        return threading.current_thread().name

    @engine.workflow(name="broken")
    async def broken(ctx) -> None:
        raise ValueError("no")  # its end (with a traceback) is written from an I/O thread

    @engine.workflow(name="napper")
    def napper(ctx) -> None:
        ctx.sleep(LONG)

    engine.launch()
    assert engine.start_workflow(where).get_result(timeout=30) == "waymark-named-0"
    assert engine.start_workflow(where_async).get_result(timeout=30) == "waymark-loop-named"
    assert engine.runtime.io_threads() == 0
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(broken).get_result(timeout=30)
    assert engine.runtime.io_threads() == 1
    assert engine_threads("waymark-io-") == ["waymark-io-named-0"]
    engine.start_workflow(napper)
    wait_until(lambda: engine.runtime.parked() == 1, 30, "the sleeper parked")
    assert engine_threads("waymark-timers-") == ["waymark-timers-named"]


def test_capacity_counts_running_workflows_not_parked_ones(make_engine) -> None:
    engine: Engine = make_engine("capacity", max_workflow_threads=3)
    engine.queue("jobs")
    release = threading.Event()

    @engine.step(name="hold")
    def hold() -> None:
        release.wait(60)

    @engine.workflow(name="busy")
    def busy(ctx) -> None:
        hold()

    @engine.workflow(name="napper")
    def napper(ctx) -> None:
        ctx.sleep(LONG)

    engine.launch()
    assert engine.runtime.free_capacity() == 3
    assert engine.runtime.active() == 0
    engine.start_workflow(napper)
    wait_until(lambda: engine.runtime.parked() == 1, 30, "the sleeper parked")
    assert engine.runtime.free_capacity() == 3  # parked: holds no thread
    assert engine.runtime.active() == 1
    handles = [engine.start_workflow(busy), engine.start_workflow(busy, queue="jobs")]
    wait_until(lambda: engine.runtime.active() == 3, 30, "both busy workflows running")
    assert engine.runtime.free_capacity() == 1
    assert engine.runtime.running_on("jobs") == 1
    assert engine.runtime.running_on("other") == 0
    release.set()
    for handle in handles:
        handle.get_result(timeout=30)
    wait_until(lambda: engine.runtime.active() == 1, 30, "the busy runs ended")
    assert engine.runtime.free_capacity() == 3
    assert engine.runtime.running_on("jobs") == 0


def test_capacity_is_never_negative(make_engine) -> None:
    """A parent blocked on its child does not count against the pool, so more workflows than
    threads can be running: the free capacity is then zero, not negative."""
    engine: Engine = make_engine("crowded", max_workflow_threads=1)
    release = threading.Event()

    @engine.step(name="hold")
    def hold() -> None:
        release.wait(60)

    @engine.workflow(name="child")
    def child(ctx) -> int:
        hold()
        return 1

    @engine.workflow(name="parent")
    def parent(ctx) -> int:
        return int(ctx.start_workflow(child).get_result(timeout=1.5))  # short: holds its thread

    engine.launch()
    handle = engine.start_workflow(parent)
    wait_until(lambda: engine.runtime.active() == 2, 30, "parent and child running")
    assert engine.runtime.free_capacity() == 0
    release.set()
    assert handle.get_result(timeout=30) == 1


# -- log lines -----------------------------------------------------------------------------------


def test_a_finished_workflow_is_logged_with_its_status(engine: Engine, caplog) -> None:
    capture_logs(caplog, logging.INFO)

    @engine.workflow(name="ok")
    def ok(ctx) -> int:
        return 1

    @engine.workflow(name="bad")
    def bad(ctx) -> None:
        raise ValueError("no")

    engine.launch()
    engine.start_workflow(ok, workflow_id="ok-1").get_result(timeout=30)
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(bad, workflow_id="bad-1").get_result(timeout=30)
    wait_until(lambda: len(records(caplog, "workflow.finish")) == 2, 30, "two finish lines")
    finished = {r.workflow_id: r for r in records(caplog, "workflow.finish")}
    assert finished["ok-1"].getMessage() == "workflow ok-1 finished: SUCCESS"
    assert finished["ok-1"].status == Status.SUCCESS
    assert finished["ok-1"].levelno == logging.INFO
    assert finished["bad-1"].getMessage() == "workflow bad-1 finished: ERROR"
    assert finished["bad-1"].status == Status.ERROR


def test_an_async_workflows_end_is_logged_too(engine: Engine, caplog) -> None:
    capture_logs(caplog, logging.INFO)

    @engine.workflow(name="ok_async")
    async def ok_async(ctx) -> int:
        return 1

    engine.launch()
    assert engine.start_workflow(ok_async, workflow_id="ok-2").get_result(timeout=30) == 1
    wait_until(lambda: records(caplog, "workflow.finish"), 30, "the finish line")
    (line,) = records(caplog, "workflow.finish")
    assert line.getMessage() == "workflow ok-2 finished: SUCCESS" and line.workflow_id == "ok-2"


def test_no_finish_line_below_info(engine: Engine, caplog) -> None:
    capture_logs(caplog, logging.WARNING)

    @engine.workflow(name="ok")
    def ok(ctx) -> int:
        return 1

    engine.launch()
    engine.start_workflow(ok).get_result(timeout=30)
    assert not records(caplog, "workflow.finish")


def test_a_timeout_is_logged_and_cancels_naming_the_workflow(engine: Engine, caplog) -> None:
    capture_logs(caplog, logging.INFO)

    @engine.workflow(name="stuck")
    def stuck(ctx) -> None:
        ctx.recv(timeout=LONG)

    engine.launch()
    handle = engine.start_workflow(stuck, workflow_id="late-1", timeout=0.5)
    with pytest.raises(WorkflowCancelledError) as info:
        handle.get_result(timeout=60)
    assert str(info.value) == "workflow 'late-1' was cancelled"
    status = engine.get_workflow_status("late-1")
    assert status is not None and status.status == Status.CANCELLED
    assert status.error == {"name": "WorkflowCancelledError", "message": str(info.value)}
    # Logged by the deadline's timer once its cancel is written: the end may be seen first.
    wait_until(lambda: records(caplog, "workflow.timeout"), 30, "the timeout logged")
    (line,) = records(caplog, "workflow.timeout")
    assert line.getMessage() == "workflow late-1 timed out" and line.workflow_id == "late-1"
    assert line.levelno == logging.INFO
    wait_until(lambda: engine.runtime.active() == 0, 30, "the run to end")


def test_a_deadline_passed_while_nobody_ran_it_cancels_at_recovery(make_engine, db, caplog) -> None:
    engine: Engine = make_engine("overdue", application_version="v1")

    @engine.workflow(name="quick")
    def quick(ctx) -> int:
        return ctx.run_step(lambda: 1)

    engine.launch()
    engine.start_workflow(quick, workflow_id="od-1", timeout=60).get_result(timeout=30)
    engine.shutdown()
    rewind(db, "od-1", keep_steps=0)
    db.raw("UPDATE workflow_status SET workflow_deadline_epoch_ms = 1 WHERE workflow_uuid = 'od-1'")

    capture_logs(caplog, logging.INFO)
    again = make_engine("overdue", application_version="v1")
    again.register_workflow(quick, name="quick")
    again.launch()
    assert records(caplog, "engine.launch")[0].recovered == 0  # not run: cancelled
    with pytest.raises(WorkflowCancelledError):
        again.retrieve_workflow("od-1").get_result(timeout=30)
    assert [r.workflow_id for r in records(caplog, "workflow.timeout")] == ["od-1"]
    assert again.list_steps("od-1") == []  # its body never ran again


def test_unrunnable_rows_are_logged_and_failed_with_the_reason(make_engine, db, caplog) -> None:
    engine: Engine = make_engine("bad", application_version="v1")

    @engine.workflow(name="known")
    def known(ctx, x):
        return x

    engine.launch()
    for wid in ("unknown-name", "corrupt-input"):
        engine.start_workflow(known, 1, workflow_id=wid).get_result(timeout=30)
        rewind(db, wid, keep_steps=0)
    engine.shutdown()
    db.raw("UPDATE workflow_status SET name = 'vanished' WHERE workflow_uuid = 'unknown-name'")
    db.raw("UPDATE workflow_status SET inputs = '{not json' WHERE workflow_uuid = 'corrupt-input'")

    capture_logs(caplog, logging.INFO)
    again = make_engine("bad", application_version="v1")
    again.register_workflow(known, name="known")
    again.launch()
    assert records(caplog, "engine.launch")[0].recovered == 0  # neither could run
    expected = (
        "unknown workflow 'vanished' in this application version (v1); register it, or run a "
        "worker of the version that started it"
    )
    with pytest.raises(WorkflowFailedError) as info:
        again.retrieve_workflow("unknown-name").get_result(timeout=30)
    assert info.value.error_name == "EngineError" and info.value.error_message == expected
    with pytest.raises(WorkflowFailedError) as info:
        again.retrieve_workflow("corrupt-input").get_result(timeout=30)
    corrupt = info.value.error_message
    assert info.value.error_name == "SerializationError"
    assert "the input of workflow 'corrupt-input'" in corrupt
    lines = {r.workflow_id: r for r in records(caplog, "workflow.unrunnable")}
    assert lines["unknown-name"].getMessage() == f"workflow unknown-name cannot run: {expected}"
    assert lines["corrupt-input"].getMessage() == f"workflow corrupt-input cannot run: {corrupt}"
    assert lines["unknown-name"].levelno == logging.ERROR
    assert again.runtime.active() == 0


# -- recovery --------------------------------------------------------------------------------


def recovery_app(make_engine, **kwargs: Any) -> tuple[Engine, Any]:
    engine: Engine = make_engine("rec", application_version="v1", **kwargs)

    @engine.workflow(name="limited", max_recovery_attempts=2)
    def limited(ctx, x):
        return ctx.run_step(lambda: x * 2)

    return engine, limited


def test_launch_counts_what_it_resumed(make_engine, db, caplog) -> None:
    from prometheus_client import CollectorRegistry

    from engine import metrics

    engine, limited = recovery_app(make_engine)
    engine.launch()
    for i in range(3):
        engine.start_workflow(limited, i, workflow_id=f"r-{i}").get_result(timeout=30)
        rewind(db, f"r-{i}", keep_steps=0)
    engine.shutdown()
    db.raw("UPDATE workflow_status SET name = 'vanished' WHERE workflow_uuid = 'r-2'")

    capture_logs(caplog, logging.INFO)
    reg = CollectorRegistry()
    again, limited = recovery_app(make_engine, metrics=metrics.Metrics(reg))
    again.launch()
    (launched,) = records(caplog, "engine.launch")
    assert launched.recovered == 2  # r-2 was claimed but could not run
    assert [again.retrieve_workflow(f"r-{i}").get_result(timeout=30) for i in (0, 1)] == [0, 2]
    assert reg.get_sample_value("waymark_recoveries_total") == 3  # each one claimed
    assert again.runtime.recover("r-0") == 0  # finished: nothing to resume


def test_recovery_up_to_the_limit_still_runs_past_it_sets_aside(make_engine, db, caplog) -> None:
    engine, limited = recovery_app(make_engine)
    engine.launch()
    for wid in ("at-limit", "past-limit"):
        engine.start_workflow(limited, 1, workflow_id=wid).get_result(timeout=30)
        rewind(db, wid, keep_steps=0)
    engine.shutdown()
    # Claiming adds one: "at-limit" is then at its maximum (2), "past-limit" over it.
    db.raw("UPDATE workflow_status SET recovery_attempts = 1 WHERE workflow_uuid = 'at-limit'")
    db.raw("UPDATE workflow_status SET recovery_attempts = 2 WHERE workflow_uuid = 'past-limit'")

    capture_logs(caplog, logging.INFO)
    again, _ = recovery_app(make_engine)
    again.launch()
    assert again.retrieve_workflow("at-limit").get_result(timeout=30) == 2
    with pytest.raises(MaxRecoveryAttemptsExceededError) as info:
        again.retrieve_workflow("past-limit").get_result(timeout=30)
    assert (info.value.workflow_id, info.value.attempts) == ("past-limit", 2)
    # The stored error counts the recoveries it had before this refused one.
    message = (
        "workflow 'past-limit' exceeded its maximum recovery attempts after 2 recoveries; "
        "inspect it, then resume it with resume_workflow()"
    )
    status = again.get_workflow_status("past-limit")
    assert status is not None and status.status == Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED
    assert status.error == {"name": "MaxRecoveryAttemptsExceededError", "message": message}
    assert str(info.value) == message  # the awaiter reads what was stored
    (line,) = records(caplog, "workflow.dead_letter")
    assert line.getMessage() == message and line.workflow_id == "past-limit"
    assert line.levelno == logging.ERROR
    assert records(caplog, "engine.launch")[0].recovered == 1


def test_recover_skips_a_workflow_already_running_here(engine: Engine) -> None:
    release = threading.Event()

    @engine.step(name="hold")
    def hold() -> int:
        release.wait(60)
        return 1

    @engine.workflow(name="busy")
    def busy(ctx) -> int:
        return hold()

    engine.launch()
    handle = engine.start_workflow(busy, workflow_id="busy-1")
    wait_until(lambda: engine.runtime.active() == 1, 30, "the workflow running")
    assert engine.runtime.recover("busy-1") == 0
    release.set()
    assert handle.get_result(timeout=30) == 1
    status = engine.get_workflow_status("busy-1")
    assert status is not None and status.recovery_attempts == 0  # it was never claimed again


def test_recovery_claims_its_workflows_a_hundred_per_transaction(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = engine._parts.store
    chunks: list[list[str]] = []
    ids = [f"w{i}" for i in range(250)]
    monkeypatch.setattr(store, "recoverable_workflows", lambda *_: ids)

    def claim_recoveries(workflow_ids: list[str], executor_id: str) -> list[None]:
        chunks.append(list(workflow_ids))
        return [None for _ in workflow_ids]  # all finished meanwhile: nothing to run

    monkeypatch.setattr(store, "claim_recoveries", claim_recoveries)
    assert engine.runtime.recover_all() == 0
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert [wid for chunk in chunks for wid in chunk] == ids


# -- parking and waking ------------------------------------------------------------------------


def test_a_woken_workflow_holds_a_thread_again(make_engine) -> None:
    engine: Engine = make_engine("waker", max_workflow_threads=2)
    release = threading.Event()

    @engine.step(name="hold")
    def hold() -> None:
        release.wait(60)

    @engine.workflow(name="receiver")
    def receiver(ctx) -> str:
        got = ctx.recv("go", timeout=LONG)
        hold()
        return str(got)

    engine.launch()
    handle = engine.start_workflow(receiver, workflow_id="recv-1")
    wait_until(lambda: engine.runtime.parked() == 1, 30, "the receiver parked")
    assert engine.runtime.free_capacity() == 2
    engine.send("recv-1", "x", "go")
    wait_until(lambda: len(engine.list_steps("recv-1")) == 2, 30, "the message received")
    assert engine.runtime.parked() == 0
    assert engine.runtime.free_capacity() == 1
    release.set()
    assert handle.get_result(timeout=30) == "x"


def test_a_parked_workflow_taken_over_meanwhile_stops_here(engine: Engine, db, caplog) -> None:
    capture_logs(caplog, logging.INFO)
    ran: list[str] = []

    @engine.workflow(name="receiver")
    def receiver(ctx) -> None:
        ctx.recv("go", timeout=LONG)
        ctx.run_step(lambda: ran.append("after"))

    engine.launch()
    engine.start_workflow(receiver, workflow_id="moved-1")
    wait_until(lambda: engine.runtime.parked() == 1, 30, "the receiver parked")
    # Another executor took it (this one was thought dead) while it slept.
    db.raw("UPDATE workflow_status SET executor_id = 'elsewhere' WHERE workflow_uuid = 'moved-1'")
    engine.send("moved-1", "x", "go")
    wait_until(lambda: engine.runtime.active() == 0, 30, "the run here to end")
    (line,) = records(caplog, "workflow.fenced")
    assert line.workflow_id == "moved-1" and line.owner == "elsewhere"
    assert line.executor_id == engine.executor_id
    assert ran == []  # the replay never started here
    status = engine.get_workflow_status("moved-1")
    assert status is not None and status.status == Status.PENDING


def test_a_parked_workflow_finished_elsewhere_ends_here_with_that_outcome(
    engine: Engine, db
) -> None:
    @engine.workflow(name="receiver")
    def receiver(ctx) -> None:
        ctx.recv("go", timeout=LONG)

    engine.launch()
    handle = engine.start_workflow(receiver, workflow_id="done-1")
    wait_until(lambda: engine.runtime.parked() == 1, 30, "the receiver parked")
    with Client(db.url, schema=db.schema) as client:  # like an operator in another process
        client.cancel_workflow("done-1")
    with pytest.raises(WorkflowCancelledError):
        handle.get_result(timeout=60)
    wait_until(lambda: engine.runtime.active() == 0, 30, "the run here to end")


def test_a_cancelled_parked_workflow_ends_at_once_for_awaiters_here(make_engine, caplog) -> None:
    # One workflow thread, taken by a blocker: a wake-up (the cancel's stop key, NOTIFY on
    # Postgres) waits in the pool's queue, so only the cancel itself can end the parked run.
    engine: Engine = make_engine("cancel-parked", max_workflow_threads=1)
    capture_logs(caplog, logging.INFO)
    entered, release = threading.Event(), threading.Event()

    @engine.workflow(name="receiver")
    def receiver(ctx) -> None:
        ctx.recv("go", timeout=LONG)

    @engine.workflow(name="blocker")
    def blocker(ctx) -> None:
        ctx.run_step(lambda: entered.set() or release.wait(60))

    @engine.workflow(name="after")
    def after(ctx) -> int:
        return 1

    engine.launch()
    handle = engine.start_workflow(receiver, workflow_id="c-1")
    wait_until(lambda: engine.runtime.parked() == 1, 30, "the receiver parked")
    engine.start_workflow(blocker)
    assert entered.wait(30)
    engine.cancel_workflow("c-1")
    assert engine.runtime.parked() == 0 and engine.runtime.active() == 1  # the blocker only
    with pytest.raises(WorkflowCancelledError):
        handle.get_result(timeout=60)
    release.set()
    # The wake-up queued behind the blocker then finds the run gone and does nothing; this
    # workflow runs after it (one thread: tasks run in the order they were queued).
    assert engine.start_workflow(after).get_result(timeout=30) == 1
    assert not records(caplog, "threads.task_crashed")
    assert not records(caplog, "workflow.fenced")
    finished = [
        r.getMessage() for r in records(caplog, "workflow.finish") if r.workflow_id == "c-1"
    ]
    assert finished == ["workflow c-1 finished: CANCELLED"]


def test_an_awaiter_here_gets_the_outcome_without_reading_the_database(
    engine: Engine, monkeypatch
) -> None:
    """The run hands its outcome to awaiters in this process: no round trip to read it."""
    release = threading.Event()

    @engine.workflow(name="held")
    def held(ctx) -> int:
        return int(ctx.run_step(lambda: release.wait(60)))

    engine.launch()
    handle = engine.start_workflow(held)
    wait_until(lambda: engine.runtime.active() == 1, 30, "the workflow running")
    reads: list[str] = []
    store = engine._parts.store
    real = store.get_workflow_outcome

    def counted(workflow_id: str) -> Any:
        reads.append(workflow_id)
        return real(workflow_id)

    monkeypatch.setattr(store, "get_workflow_outcome", counted)
    awaiter, got = await_in_thread(monkeypatch, engine, handle, release)
    awaiter.join(60)
    assert got == [1] and reads == []


# -- the database lost -------------------------------------------------------------------------


class RecordedTimers:
    """Stands in for the runtime's timer thread: records what is scheduled; the test fires."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[int, Callable[[], None]]] = []

    def at(self, epoch_ms: int, callback: Callable[[], None]) -> None:
        self.scheduled.append((epoch_ms, callback))

    def fire(self) -> int:
        """Run what is scheduled (not what that schedules); how many ran."""
        due, self.scheduled = self.scheduled, []
        for _, callback in due:
            callback()
        return len(due)

    def stop(self) -> None:
        self.scheduled.clear()


NOW_MS = 1_000_000_000_000


@pytest.fixture
def lost_db(monkeypatch: pytest.MonkeyPatch) -> RecordedTimers:
    """A frozen clock for the runtime (no deadlines in these tests) and recorded timers."""
    monkeypatch.setattr(runtime_mod, "clock", types.SimpleNamespace(now_ms=lambda: NOW_MS))
    return RecordedTimers()


def fail_once(
    monkeypatch: pytest.MonkeyPatch, obj: object, name: str, when: Callable[..., bool]
) -> list[object]:
    """Make ``obj.name`` raise SystemDatabaseUnavailableError the first time ``when(*args)``."""
    real = getattr(obj, name)
    failed: list[object] = []

    def maybe_fail(*args: Any) -> Any:
        if not failed and when(*args):
            failed.append(args)
            raise SystemDatabaseUnavailableError("the system database stayed unreachable")
        return real(*args)

    async def maybe_fail_async(*args: Any) -> Any:
        if not failed and when(*args):
            failed.append(args)
            raise SystemDatabaseUnavailableError("the system database stayed unreachable")
        return await real(*args)

    wrapper = maybe_fail_async if asyncio.iscoroutinefunction(real) else maybe_fail
    monkeypatch.setattr(obj, name, wrapper)
    return failed


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_workflow_that_loses_the_database_pauses_and_resumes_later(
    make_engine, caplog, monkeypatch, lost_db: RecordedTimers, kind: str
) -> None:
    engine: Engine = make_engine("lost")
    engine.runtime._timers = lost_db  # type: ignore[assignment]
    ran: list[str] = []

    if kind == "sync":

        @engine.step(name="first")
        def first() -> int:
            ran.append("first")
            return 1

        @engine.workflow(name="two")
        def two(ctx) -> int:
            return first() + ctx.run_step(lambda: 2)

        record = "record_step"
    else:

        @engine.step(name="first")
        async def first() -> int:
            ran.append("first")
            return 1

        @engine.step(name="second")
        async def second() -> int:
            return 2

        @engine.workflow(name="two")
        async def two(ctx) -> int:
            return await first() + await second()

        record = "record_step_async"

    store = engine._parts.store
    failed = fail_once(monkeypatch, store, record, lambda step, _executor: step.step_id == 1)
    capture_logs(caplog, logging.INFO)
    engine.launch()
    handle = engine.start_workflow(two, workflow_id="lost-1")
    wait_until(lambda: records(caplog, "workflow.db_lost"), 30, "the workflow to pause")
    (line,) = records(caplog, "workflow.db_lost")
    assert failed and line.workflow_id == "lost-1" and line.levelno == logging.ERROR
    assert line.getMessage() == "workflow lost-1 paused: the system database stayed unreachable"
    wait_until(lambda: lost_db.scheduled, 30, "the resume to be scheduled")
    assert engine.runtime.active() == 0  # the paused run ended here
    status = engine.get_workflow_status("lost-1")
    assert status is not None and status.status == Status.PENDING  # paused, not failed
    assert [at for at, _ in lost_db.scheduled] == [NOW_MS + runtime_mod.RESUME_AFTER_DB_LOSS_MS]

    assert lost_db.fire() == 1  # the database is back: resumed from its checkpoints
    assert handle.get_result(timeout=30) == 3
    assert ran == ["first", "first"]  # its checkpoint was lost, so it ran again
    status = engine.get_workflow_status("lost-1")
    assert status is not None and status.status == Status.SUCCESS
    assert status.recovery_attempts == 1
    assert not records(caplog, "workflow.finish_failed")


def test_a_resume_that_loses_the_database_again_is_retried(
    make_engine, caplog, monkeypatch, lost_db: RecordedTimers
) -> None:
    engine: Engine = make_engine("lost-again")
    engine.runtime._timers = lost_db  # type: ignore[assignment]

    @engine.workflow(name="one")
    def one(ctx) -> int:
        return ctx.run_step(lambda: 1)

    store = engine._parts.store
    # The step's write (with the final status: it is the last step) finds the database gone.
    fail_once(monkeypatch, store, "finish_after_step", lambda *_: True)
    claims = fail_once(monkeypatch, store, "claim_recoveries", lambda *_: True)
    capture_logs(caplog, logging.INFO)
    engine.launch()
    handle = engine.start_workflow(one, workflow_id="again-1")
    wait_until(lambda: lost_db.scheduled, 30, "the resume to be scheduled")
    assert lost_db.fire() == 1  # the first resume finds the database gone again...
    wait_until(lambda: lost_db.scheduled, 30, "the resume to be scheduled again")
    assert claims and [at for at, _ in lost_db.scheduled] == [NOW_MS + 5000]
    assert lost_db.fire() == 1  # ...and the next one finds it back
    assert handle.get_result(timeout=30) == 1
    assert not records(caplog, "threads.task_crashed")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_failed_final_write_is_logged_and_ends_the_run(
    make_engine, caplog, monkeypatch, kind: str
) -> None:
    engine: Engine = make_engine("unfinished")
    release = threading.Event()

    if kind == "sync":

        @engine.workflow(name="wf")
        def wf(ctx) -> int:
            return int(ctx.run_step(lambda: release.wait(60)))

    else:

        @engine.workflow(name="wf")
        async def wf(ctx) -> int:
            return int(await ctx.run_step_async(lambda: release.wait(60)))

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(engine._parts.store, "finish_workflow", broken)
    monkeypatch.setattr(engine._parts.store, "finish_after_step", broken)  # with the last step
    monkeypatch.setattr(engine._parts.store, "finish_workflow_async", broken)
    capture_logs(caplog, logging.INFO)
    engine.launch()
    handle = engine.start_workflow(wf, workflow_id="unf-1")
    awaiter, got = await_in_thread(monkeypatch, engine, handle, release)
    wait_until(lambda: records(caplog, "workflow.finish_failed"), 30, "the failure logged")
    (line,) = records(caplog, "workflow.finish_failed")
    assert line.getMessage() == "could not record the end of workflow unf-1"
    assert line.workflow_id == "unf-1" and line.levelno == logging.ERROR
    assert line.exc_info is not None and str(line.exc_info[1]) == "disk full"
    wait_until(lambda: engine.runtime.active() == 0, 30, "the run to end")
    # Its end is not known here: the awaiter asks the database, where it is still PENDING
    # until an operator cancels it.
    engine.cancel_workflow("unf-1")
    awaiter.join(60)
    assert len(got) == 1 and isinstance(got[0], WorkflowCancelledError)
    assert not records(caplog, "workflow.finish")
    assert not records(caplog, "threads.task_crashed")


# -- async runs on the application's loop ----------------------------------------------------


def test_an_app_loop_ending_under_an_async_workflow_leaves_it_pending(engine: Engine) -> None:
    @engine.workflow(name="waiter")
    async def waiter(ctx) -> str:
        return str(await ctx.recv_async("go", timeout=LONG))

    engine.launch()

    async def main() -> str:
        handle = await engine.start_workflow_async(waiter, workflow_id="loop-1")
        wait = asyncio.get_running_loop().time() + 30
        while engine.runtime.active() == 0 and asyncio.get_running_loop().time() < wait:
            await asyncio.sleep(0.01)
        return handle.workflow_id

    assert asyncio.run(main()) == "loop-1"  # the loop ends: its tasks are cancelled
    wait_until(lambda: engine.runtime.active() == 0, 30, "the run to end with its loop")
    assert not engine.runtime._tasks  # nothing kept for a finished task
    status = engine.get_workflow_status("loop-1")
    assert status is not None and status.status == Status.PENDING  # recovery resumes it


def test_an_async_workflow_hands_its_deadline_to_its_children(engine: Engine) -> None:
    @engine.workflow(name="child")
    def child(ctx) -> int:
        return 1

    @engine.workflow(name="parent")
    async def parent(ctx) -> int:
        handle = await ctx.start_workflow_async(child)
        return int(await handle.get_result_async())

    engine.launch()
    assert engine.start_workflow(parent, workflow_id="ap", timeout=LONG).get_result(30) == 1
    parent_status, child_status = (
        engine.get_workflow_status("ap"),
        engine.get_workflow_status("ap-1"),
    )
    assert parent_status is not None and child_status is not None
    assert parent_status.deadline is not None
    assert child_status.deadline == parent_status.deadline


def test_async_workflows_started_on_an_app_loop_are_not_kept_once_done(engine: Engine) -> None:
    @engine.workflow(name="quick")
    async def quick(ctx, x: int) -> int:
        return x

    engine.launch()

    async def main() -> list[int]:
        handles = [await engine.start_workflow_async(quick, i) for i in range(3)]
        return [await h.get_result_async(timeout=30) for h in handles]

    assert asyncio.run(main()) == [0, 1, 2]
    assert not engine.runtime._tasks  # the runtime holds a task only while it runs


# -- shutdown --------------------------------------------------------------------------------


def test_shutdown_waits_for_the_running_step_and_leaves_the_rest_pending(
    engine: Engine, db
) -> None:
    entered, release = threading.Event(), threading.Event()
    ran: list[str] = []

    @engine.step(name="first")
    def first() -> int:
        entered.set()
        release.wait(60)
        ran.append("first")
        return 1

    @engine.step(name="second")
    def second() -> int:
        ran.append("second")
        return 2

    @engine.workflow(name="two")
    def two(ctx) -> int:
        return first() + second()

    engine.launch()
    engine.start_workflow(two, workflow_id="stop-1")
    assert entered.wait(30)
    stopper = threading.Thread(target=engine.shutdown, kwargs={"timeout": 60})
    stopper.start()
    wait_until(engine.runtime.stopping.is_set, 30, "shutdown to begin")
    release.set()
    stopper.join(60)
    assert not stopper.is_alive()
    assert ran == ["first"]  # stopped at the step boundary, its checkpoint written
    with Client(db.url, schema=db.schema) as client:
        status = client.get_workflow_status("stop-1")
        assert status is not None and status.status == Status.PENDING
        assert [step.name for step in client.list_steps("stop-1")] == ["first"]


def test_shutdown_gives_up_on_a_stuck_workflow_after_its_timeout(make_engine, db) -> None:
    engine: Engine = make_engine("stuckapp")
    entered, release = threading.Event(), threading.Event()

    @engine.workflow(name="stuck")
    def stuck(ctx) -> None:
        ctx.run_step(lambda: entered.set() or release.wait(60))

    engine.launch()
    try:
        engine.start_workflow(stuck, workflow_id="stuck-1")
        assert entered.wait(30)
        engine.shutdown(timeout=0.2)  # returns with the step still running
        assert engine.runtime.active() == 0
        with Client(db.url, schema=db.schema) as client:
            status = client.get_workflow_status("stuck-1")
            assert status is not None and status.status == Status.PENDING  # for recovery
    finally:
        release.set()  # its thread then ends (whatever its last write does): nothing outlives
        wait_until(lambda: not engine_threads("waymark-stuckapp-"), 30, "the stuck thread")


def test_shutdown_stops_every_thread_it_started(make_engine) -> None:
    engine: Engine = make_engine("stopper")

    @engine.step(name="io")
    async def io() -> int:
        return 1

    @engine.workflow(name="a")
    async def a(ctx) -> int:
        return await io()

    @engine.workflow(name="s")
    def s(ctx) -> int:
        return ctx.run_step(lambda: 1)

    @engine.workflow(name="napper")
    def napper(ctx) -> None:
        ctx.sleep(LONG)

    engine.launch()
    engine.start_workflow(a).get_result(timeout=30)
    engine.start_workflow(s).get_result(timeout=30)
    parked = engine.start_workflow(napper)
    wait_until(lambda: engine.runtime.parked() == 1, 30, "the sleeper parked")
    assert engine_threads("waymark-stopper-") and engine_threads("waymark-loop-stopper")
    engine.shutdown(timeout=30)
    assert engine.runtime.active() == 0
    for prefix in ("waymark-stopper-", "waymark-loop-stopper", "waymark-io-stopper"):
        wait_until(lambda p=prefix: not engine_threads(p), 30, f"the {prefix}* threads to end")
    wait_until(lambda: not engine_threads("waymark-timers-stopper"), 30, "the timer thread")
    del parked


@pytest.mark.parametrize(
    ("change", "ends"),
    [
        ("name = 'vanished'", WorkflowFailedError),
        ("inputs = '{not json'", WorkflowFailedError),
        ("recovery_attempts = 5", MaxRecoveryAttemptsExceededError),
        ("workflow_deadline_epoch_ms = 1", WorkflowCancelledError),
    ],
)
def test_a_woken_workflow_whose_row_cannot_run_any_more_ends_here(
    engine: Engine, db, caplog, change: str, ends: type[Exception]
) -> None:
    """Waking replays from the row as it is now: one that can no longer run (renamed, corrupt,
    recovered too often elsewhere, past its deadline) ends, its awaiters here hear of it, and
    its end is logged with the status it ended in."""
    capture_logs(caplog, logging.INFO)

    @engine.workflow(name="receiver", max_recovery_attempts=2)
    def receiver(ctx, x) -> str:
        return str(ctx.recv("go", timeout=LONG))

    engine.launch()
    handle = engine.start_workflow(receiver, 1, workflow_id="w-1", timeout=LONG)
    wait_until(lambda: engine.runtime.parked() == 1, 30, "the receiver parked")
    db.raw(f"UPDATE workflow_status SET {change} WHERE workflow_uuid = 'w-1'")
    engine.send("w-1", "x", "go")
    with pytest.raises(ends):
        handle.get_result(timeout=60)
    assert engine.runtime.active() == 0
    status = engine.get_workflow_status("w-1")
    assert status is not None
    wait_until(lambda: records(caplog, "workflow.finish"), 30, "the end logged")
    (line,) = records(caplog, "workflow.finish")
    assert line.workflow_id == "w-1" and line.status == status.status != Status.PENDING


# -- hand-offs (take_over) ---------------------------------------------------------------------


def test_take_over_waits_for_the_end_or_the_park_and_explains_what_it_did_not_take(
    make_engine, caplog
) -> None:
    from tests.engine.test_handoff import Recorder

    recorder = Recorder()
    dispatcher: Engine = make_engine(executor_id="dispatcher", dispatcher=recorder)
    worker: Engine = make_engine(executor_id="worker", claim_queues=False)
    for engine in (dispatcher, worker):
        engine.queue("jobs")

        @engine.workflow(name="job")
        def job(ctx, x: int) -> int:
            return int(ctx.run_step(lambda: x * 2))

        @engine.workflow(name="waiter")
        def waiter(ctx) -> str:
            return str(ctx.recv("go", timeout=LONG))

    dispatcher.launch()
    done = dispatcher.start_workflow("job", 21, queue="jobs")
    parks = dispatcher.start_workflow("waiter", queue="jobs")
    for handle in (done, parks):
        wait_until(lambda h=handle: h.workflow_id in recorder.sent, 60, "the hand-off")

    worker.take_over(done.workflow_id, "dispatcher")
    status = worker.get_workflow_status(done.workflow_id)  # ended before take_over returned
    assert status is not None and status.status == Status.SUCCESS
    assert status.executor_id == "worker"
    worker.take_over(parks.workflow_id, "dispatcher")  # returns once it parks
    assert worker.runtime.parked() == 1
    worker.send(parks.workflow_id, "x", "go")
    assert parks.get_result(timeout=60) == "x"

    capture_logs(caplog, logging.INFO)
    worker.take_over(done.workflow_id, "dispatcher")  # a duplicate hand-off
    worker.take_over("nobody", "dispatcher")
    (duplicate,) = records(caplog, "handoff.duplicate")
    assert duplicate.getMessage() == (
        f"not taking workflow {done.workflow_id}: already taken (SUCCESS under worker)"
    )
    (missing,) = records(caplog, "handoff.missing")
    assert missing.getMessage() == "not taking workflow ?: no such workflow"
    assert worker.runtime.active() == 0


# -- what taking a row costs and reports -------------------------------------------------------


def test_a_fresh_workflow_reads_no_steps_back_a_resumed_one_does(
    make_engine, db, monkeypatch
) -> None:
    """Replay needs the recorded steps; a row just created has none, so reading them would
    be a round trip for nothing on every start (the hot path)."""
    engine: Engine = make_engine("reads", application_version="v1")

    @engine.workflow(name="one")
    def one(ctx, x: int) -> int:
        return int(ctx.run_step(lambda: x))

    engine.launch()
    listed: list[str] = []
    store = engine._parts.store
    real = store.list_steps

    def counted(workflow_id: str) -> Any:
        listed.append(workflow_id)
        return real(workflow_id)

    monkeypatch.setattr(store, "list_steps", counted)
    assert engine.start_workflow(one, 7, workflow_id="fresh-1").get_result(timeout=30) == 7
    assert listed == []
    rewind(db, "fresh-1", keep_steps=1)
    assert engine.runtime.recover("fresh-1") == 1
    assert engine.retrieve_workflow("fresh-1").get_result(timeout=30) == 7
    assert listed == ["fresh-1"]


def test_starts_queue_waits_and_ends_are_reported_to_the_metrics(make_engine, db) -> None:
    from prometheus_client import CollectorRegistry

    from engine import metrics

    reg = CollectorRegistry()
    engine: Engine = make_engine("counted", metrics=metrics.Metrics(reg))
    engine.queue("jobs")

    @engine.workflow(name="job")
    def job(ctx, x: int) -> int:
        return int(ctx.run_step(lambda: x))

    def sample(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, labels) or 0.0

    def finished(count: int) -> Callable[[], bool]:
        labels = {"workflow": "job", "status": "SUCCESS"}
        return lambda: sample("waymark_workflows_finished_total", **labels) == count

    engine.launch()
    assert engine.start_workflow(job, 1, workflow_id="m-1").get_result(timeout=30) == 1
    assert engine.start_workflow(job, 2, queue="jobs").get_result(timeout=30) == 2
    wait_until(finished(2), 30, "both ends counted")
    assert sample("waymark_workflows_started_total", workflow="job") == 2
    assert sample("waymark_queue_wait_seconds_count", queue="jobs") == 1
    assert sample("waymark_workflow_duration_seconds_count", workflow="job") == 2
    # Resumed from its checkpoints: its end counts again, its start does not.
    rewind(db, "m-1", keep_steps=1)
    assert engine.runtime.recover("m-1") == 1
    assert engine.retrieve_workflow("m-1").get_result(timeout=30) == 1
    wait_until(finished(3), 30, "the resumed end counted")
    assert sample("waymark_workflows_started_total", workflow="job") == 2
    assert sample("waymark_recoveries_total") == 1


def test_launch_counts_a_resumed_async_workflow_too(make_engine, db, caplog) -> None:
    def app() -> tuple[Engine, Any]:
        engine: Engine = make_engine("rec-async", application_version="v1")

        @engine.workflow(name="doubled")
        async def doubled(ctx, x):
            return await ctx.run_step_async(lambda: x * 2)

        return engine, doubled

    engine, doubled = app()
    engine.launch()
    engine.start_workflow(doubled, 4, workflow_id="async-r").get_result(timeout=30)
    rewind(db, "async-r", keep_steps=0)
    engine.shutdown()

    capture_logs(caplog, logging.INFO)
    again, _ = app()
    again.launch()
    (launched,) = records(caplog, "engine.launch")
    assert launched.recovered == 1  # started on a loop, counted like a thread's
    assert again.retrieve_workflow("async-r").get_result(timeout=30) == 8


def test_a_coroutine_awaiting_a_run_here_wakes_at_its_end(engine: Engine) -> None:
    """Awaited from a coroutine with no timeout, a workflow running in this process is
    waited for on its end signal alone: nothing polls for it."""
    gate = threading.Event()

    @engine.workflow(name="gated")
    def gated(ctx):
        ctx.run_step(lambda: gate.wait(LONG))
        return "through"

    engine.launch()
    handle = engine.start_workflow(gated)

    async def main() -> Any:
        waiting = asyncio.ensure_future(handle.get_result_async())
        for _ in range(3):  # let it register and find the run still going
            await asyncio.sleep(0)
        assert not waiting.done()
        gate.set()
        return await asyncio.wait_for(waiting, 30)

    assert asyncio.run(main()) == "through"
