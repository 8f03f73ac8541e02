"""Issue 15, part 3: durable queue control seen by every worker (both backends)."""

from __future__ import annotations

import threading

import pytest

from engine import Client, Engine, EngineError, QueueInfo, Status
from tests.support import wait_until


def statuses(engine: Engine, ids: list[str]) -> list[str]:
    found = []
    for workflow_id in ids:
        status = engine.get_workflow_status(workflow_id)
        found.append(status.status if status is not None else "MISSING")
    return found


def info(engine: Engine | Client, name: str) -> QueueInfo:
    return next(q for q in engine.list_queues() if q.name == name)


@pytest.fixture
def app(engine: Engine):
    gate = threading.Event()
    work = engine.queue("work", rate_limit=(1000, 1.0))
    other = engine.queue("other")

    @engine.workflow(name="job")
    def job(ctx, n):
        ctx.run_step(lambda: gate.wait(60))
        return n

    @engine.workflow(name="ping")
    def ping(ctx):
        return "pong"

    engine.launch()
    yield engine, gate, work, other
    gate.set()


def settle(engine: Engine, other) -> None:
    """A workflow on another queue ran: the worker made passes since the last change."""
    assert engine.start_workflow("ping", queue=other).get_result(timeout=30) == "pong"
    assert engine.start_workflow("ping", queue=other).get_result(timeout=30) == "pong"


def test_a_paused_queue_starts_nothing_until_resumed(app, db) -> None:
    engine, gate, work, other = app
    gate.set()
    engine.pause_queue("work")
    settle(engine, other)  # a claim pass already under way when the pause landed may finish
    ids = [engine.start_workflow("job", i, queue=work).workflow_id for i in range(3)]
    settle(engine, other)
    assert statuses(engine, ids) == [Status.ENQUEUED] * 3
    queue = info(engine, "work")
    assert queue.paused and queue.enqueued == 3 and queue.running == 0
    assert queue.oldest_enqueued_at is not None
    with Client(db.url, schema=db.schema) as client:
        assert info(client, "work").paused  # stored in the database: every process sees it
        client.resume_queue("work")
    assert not info(engine, "work").paused  # (re-reads the settings the worker uses)
    engine.resume_queue("work")  # resuming a running queue is a no-op
    wait_until(lambda: statuses(engine, ids) == [Status.SUCCESS] * 3, what="resumed queue ran")


def test_a_pause_by_another_process_holds_and_running_work_continues(app, db) -> None:
    engine, gate, work, other = app
    running = engine.start_workflow("job", 1, queue=work)
    wait_until(lambda: statuses(engine, [running.workflow_id]) == [Status.PENDING], what="start")
    with Client(db.url, schema=db.schema) as client:
        client.pause_queue("work")
        assert info(engine, "work").paused  # the engine's view is fresh from here on
        waiting = client.start_workflow("job", 2, queue="work")
        settle(engine, other)
        assert statuses(engine, [waiting.workflow_id]) == [Status.ENQUEUED]
        gate.set()
        assert running.get_result(timeout=30) == 1  # what ran goes on
        settle(engine, other)
        assert statuses(engine, [waiting.workflow_id]) == [Status.ENQUEUED]
        client.resume_queue("work")
        assert waiting.get_result(timeout=30) == 2


def test_set_queue_limits_changes_only_what_is_given_and_applies(app, db) -> None:
    engine, gate, work, other = app
    engine.set_queue_limits("work", concurrency=1)
    queue = info(engine, "work")
    assert (queue.concurrency, queue.worker_concurrency, queue.rate_limit) == (
        1, None, (1000, 1.0)
    )  # fmt: skip
    with Client(db.url, schema=db.schema) as client:
        client.set_queue_limits("work", worker_concurrency=5)
        assert info(engine, "work").concurrency == 1  # kept
        assert info(client, "work").worker_concurrency == 5
    ids = [engine.start_workflow("job", i, queue=work).workflow_id for i in range(3)]
    wait_until(lambda: statuses(engine, ids).count(Status.PENDING) == 1, what="one running")
    settle(engine, other)
    assert sorted(statuses(engine, ids)) == [Status.ENQUEUED, Status.ENQUEUED, Status.PENDING]
    engine.set_queue_limits("work", concurrency=None, rate_limit=None)
    wait_until(lambda: statuses(engine, ids).count(Status.PENDING) == 3, what="all running")
    queue = info(engine, "work")
    assert (queue.concurrency, queue.worker_concurrency, queue.rate_limit) == (None, 5, None)
    assert queue.running == 3 and queue.enqueued == 0
    gate.set()
    wait_until(lambda: statuses(engine, ids) == [Status.SUCCESS] * 3, what="all done")


def test_list_queues_has_declared_and_seen_queues(app, db) -> None:
    engine, *_ = app
    names = [q.name for q in engine.list_queues()]
    assert names == ["other", "work"]  # declared, never used; the internal queue hidden
    with Client(db.url, schema=db.schema) as client:
        assert [q.name for q in client.list_queues()] == ["other", "work"]  # via heartbeats
        client.start_workflow("ping", queue="elsewhere")  # seen in the database only
        assert "elsewhere" in [q.name for q in client.list_queues()]
        client.pause_queue("elsewhere")
        assert info(client, "elsewhere").paused and info(client, "elsewhere").enqueued == 1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: c.pause_queue("nope"), EngineError, "unknown queue 'nope'; declare it"),
        (lambda c: c.resume_queue("nope"), EngineError, "unknown queue 'nope'"),
        (lambda c: c.set_queue_limits("nope", concurrency=2), EngineError, "unknown queue"),
        (
            lambda c: c.set_queue_limits("work", concurrency=-1),
            ValueError,
            "concurrency=-1 is not a limit; pass an int >= 1, or None",
        ),
        (
            lambda c: c.set_queue_limits("work", worker_concurrency=0, concurrency=3),
            ValueError,
            "worker_concurrency=0 is not a limit",
        ),
        (
            lambda c: c.set_queue_limits("work", rate_limit=(5, -1)),
            ValueError,
            "rate_limit=(5, -1) is not a rate limit",
        ),
        (lambda c: c.set_queue_limits("work"), ValueError, "needs at least one of"),
        (lambda c: c.pause_queue(""), ValueError, "non-empty string"),
    ],
)
def test_bad_queue_control_is_refused_and_nothing_written(app, db, call, error, message) -> None:
    engine, *_ = app
    with Client(db.url, schema=db.schema) as client:
        for target in (engine, client):
            with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
                call(target)
    queue = info(engine, "work")
    assert not queue.paused and queue.concurrency is None and queue.rate_limit == (1000, 1.0)
    assert "nope" not in [q.name for q in engine.list_queues()]
