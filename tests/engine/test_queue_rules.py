"""Queue rules to the letter: every refused declaration or control call says exactly what was
wrong and how to fix it; settings stored by control calls are what every worker applies."""

from __future__ import annotations

import datetime as dt

import pytest

from engine import Client, Engine, EngineError
from engine.queue_control import Settings, apply
from engine.queues import INTERNAL_QUEUE, Queue, delay_ms, queue_name

RATE_RULE = "rate_limit must be (max_starts >= 1, period_seconds > 0)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "queue name must be a non-empty string other than '_waymark', got ''"),
        (
            {"name": INTERNAL_QUEUE},
            "queue name must be a non-empty string other than '_waymark', got '_waymark'",
        ),
        ({"name": 7}, "queue name must be a non-empty string other than '_waymark', got 7"),
        ({"concurrency": 0}, "queue 'q': concurrency must be an int >= 1, got 0"),
        ({"worker_concurrency": "2"}, "queue 'q': worker_concurrency must be an int >= 1, got '2'"),
        (
            {"partition_concurrency": -1},
            "queue 'q': partition_concurrency must be an int >= 1, got -1",
        ),
        ({"rate_limit": (0, 1.0)}, f"queue 'q': {RATE_RULE}, got (0, 1.0)"),
        ({"rate_limit": ("3", 1.0)}, f"queue 'q': {RATE_RULE}, got ('3', 1.0)"),
        ({"rate_limit": (3, 0)}, f"queue 'q': {RATE_RULE}, got (3, 0)"),
        ({"rate_limit": (3, -0.5)}, f"queue 'q': {RATE_RULE}, got (3, -0.5)"),
    ],
)
def test_a_bad_queue_declaration_names_the_value_and_the_rule(kwargs, message) -> None:
    arguments = {"name": "q", **kwargs}
    with pytest.raises(ValueError) as info:
        Queue(**arguments)
    assert str(info.value) == message


def test_the_smallest_valid_limits_are_kept_as_given() -> None:
    queue = Queue("q", 1, 1, (1, 0.001), 1)
    assert (queue.concurrency, queue.worker_concurrency, queue.partition_concurrency) == (1, 1, 1)
    assert queue.rate_limit == (1, 0.001)
    internal = Queue.internal()
    assert internal.name == INTERNAL_QUEUE
    assert (internal.concurrency, internal.worker_concurrency) == (None, None)
    assert (internal.rate_limit, internal.partition_concurrency) == (None, None)
    assert queue_name(queue) == "q" and queue_name("by-name") == "by-name"


def test_delays_in_seconds_or_timedelta_become_milliseconds() -> None:
    assert delay_ms(None) is None
    assert delay_ms(0) == 0
    assert delay_ms(0.25) == 250
    assert delay_ms(dt.timedelta(seconds=1, milliseconds=500)) == 1500
    for bad in (-1, True, "1"):
        with pytest.raises(ValueError) as info:
            delay_ms(bad)  # type: ignore[arg-type]
        assert str(info.value) == f"delay must be seconds >= 0 or a timedelta, got {bad!r}"


def test_settings_override_the_declared_limits_as_stored() -> None:
    declared = Queue("q", concurrency=2, worker_concurrency=3, rate_limit=(5, 1.0))
    assert apply(declared, None) is declared
    assert apply(declared, Settings(True, {"concurrency": 9})) is None  # paused
    assert apply(declared, Settings(False, {})) is declared
    changed = apply(declared, Settings(False, {"concurrency": 4, "rate_limit": [7, 2]}))
    assert changed == Queue("q", concurrency=4, worker_concurrency=3, rate_limit=(7, 2.0))
    assert isinstance(changed.rate_limit[1], float)  # type: ignore[union-attr]
    cleared = apply(declared, Settings(False, {"worker_concurrency": 0, "rate_limit": []}))
    assert cleared == Queue("q", concurrency=2, worker_concurrency=None, rate_limit=None)


@pytest.fixture
def worked(engine: Engine) -> Engine:
    engine.queue("work", concurrency=5, worker_concurrency=2, rate_limit=(100, 1.0))
    engine.queue("other", partition_concurrency=3)

    @engine.workflow(name="job")
    def job(ctx, n):
        return n

    engine.launch()
    return engine


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda c: c.set_queue_limits("work", concurrency=True),
            ValueError,
            "queue 'work': concurrency=True is not a limit; pass an int >= 1, or None for no limit",
        ),
        (
            lambda c: c.set_queue_limits("work", worker_concurrency="2"),
            ValueError,
            "queue 'work': worker_concurrency='2' is not a limit; pass an int >= 1, or None for "
            "no limit",
        ),
        *[
            (
                lambda c, rate=rate: c.set_queue_limits("work", rate_limit=rate),
                ValueError,
                f"queue 'work': rate_limit={rate!r} is not a rate limit; pass (max_starts >= 1, "
                "period_seconds > 0), or None for no limit",
            )
            for rate in [(True, 1), (1, True), (0, 1), (2, 0), ("2", 1), (2, "1"), (2,), 5]
        ],
        (
            lambda c: c.set_queue_limits("work"),
            ValueError,
            "set_queue_limits needs at least one of concurrency=, worker_concurrency=, rate_limit=",
        ),
        (lambda c: c.pause_queue(3), ValueError, "a queue name must be a non-empty string, got 3"),
        (
            lambda c: c.resume_queue(INTERNAL_QUEUE),
            EngineError,
            "queue '_waymark' is the engine's own; it cannot be controlled",
        ),
        (
            lambda c: c.pause_queue("nope"),
            EngineError,
            "unknown queue 'nope'; declare it with engine.queue() (known queues: other, work)",
        ),
    ],
)
def test_a_bad_control_call_says_exactly_what_and_writes_nothing(
    worked: Engine, db, call, error, message
) -> None:
    with Client(db.url, schema=db.schema) as client:
        for target in (worked, client):
            with pytest.raises(error) as info:
                call(target)
            assert str(info.value) == message
    assert db.raw("SELECT queue_name FROM queue_settings") == []


def test_unknown_queue_with_none_declared_says_none(engine: Engine) -> None:
    engine.launch()
    with pytest.raises(EngineError) as info:
        engine.resume_queue("nope")
    assert str(info.value) == (
        "unknown queue 'nope'; declare it with engine.queue() (known queues: none)"
    )


def test_limits_set_are_listed_and_applied_by_every_worker(worked: Engine, db) -> None:
    def listed(target: Engine | Client) -> dict[str, tuple[object, ...]]:
        return {
            q.name: (
                q.paused,
                q.concurrency,
                q.worker_concurrency,
                q.rate_limit,
                q.partition_concurrency,
            )
            for q in target.list_queues()
        }

    assert listed(worked) == {
        "other": (False, None, None, None, 3),
        "work": (False, 5, 2, (100, 1.0), None),
    }
    with Client(db.url, schema=db.schema) as client:  # the worker's limits, via its heartbeat
        assert listed(client) == listed(worked)
    worked.set_queue_limits("work", rate_limit=(1, 0.5))  # the smallest rate that is one
    assert listed(worked)["work"][3] == (1, 0.5)
    worked.set_queue_limits("work", concurrency=None, rate_limit=(7, 2))
    worked.set_queue_limits("work", worker_concurrency=4)  # a second change keeps the first
    worked.pause_queue("other")
    expected = {"other": (True, None, None, None, 3), "work": (False, None, 4, (7, 2.0), None)}
    assert listed(worked) == expected
    with Client(db.url, schema=db.schema) as client:  # declared only in the worker's heartbeat
        assert listed(client) == expected
    worked.resume_queue("other")
    worked.set_queue_limits("work", rate_limit=None)
    assert listed(worked)["work"] == (False, None, 4, None, None)
    assert listed(worked)["other"][0] is False


def test_unreadable_stored_limits_leave_the_declared_ones(worked: Engine, db) -> None:
    worked.pause_queue("work")
    worked.resume_queue("work")
    # Postgres keeps the column as JSON, so only SQLite can hold text that is not JSON at all.
    unreadable = ["[1, 2]", '"text"', '"concurrency rate_limit"'] + (
        ["{not json"] if db.backend == "sqlite" else []
    )
    for stored in unreadable:
        db.raw("UPDATE queue_settings SET limits = %s WHERE queue_name = 'work'", (stored,))
        work = next(q for q in worked.list_queues() if q.name == "work")
        assert (work.concurrency, work.worker_concurrency, work.rate_limit) == (5, 2, (100, 1.0))


def test_queue_counts_show_waiting_delayed_and_the_oldest(worked: Engine) -> None:
    worked.pause_queue("work")
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    for n in range(2):
        worked.start_workflow("job", n, queue="work")
    worked.start_workflow("job", 9, queue="work", delay=3600)
    worked.pause_queue("other")
    worked.start_workflow("job", 3, queue="other", partition_key="tenant-1")
    work, other = (
        next(q for q in worked.list_queues() if q.name == name) for name in ("work", "other")
    )
    assert (work.enqueued, work.running, work.delayed) == (2, 0, 1)
    assert work.oldest_enqueued_at is not None
    assert before <= work.oldest_enqueued_at <= dt.datetime.now(dt.UTC)
    assert (other.enqueued, other.running, other.delayed) == (1, 0, 0)


def test_serving_an_undeclared_queue_is_refused_before_anything_starts(make_engine) -> None:
    engine = make_engine(queues=["emails", "typo"])
    engine.queue("emails")
    with pytest.raises(EngineError) as info:
        engine.launch()
    assert str(info.value) == "queues ['typo'] were never declared with engine.queue()"
    # Nothing was frozen or started: declaring the missing queue makes the launch go through.
    engine.queue("typo")
    engine.launch()
    assert {q.name for q in engine.list_queues()} >= {"emails", "typo"}
