"""Debouncing (issue 15): one workflow per burst, started with the latest input; both backends.

Bursts are given a long period (an hour) where a test must not depend on the machine's speed:
the end of the period is then made to pass by moving the burst's start time in the database,
exactly what the clock would do. Where real time is the point (a burst that starts by itself,
max_wait under a steady stream of debounces) nothing is asserted about how long it took.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from engine import Client, Debouncer, EngineError, SerializationError, Status
from tests.support import wait_until

HOUR = 3600.0
ROOT = Path(__file__).resolve().parents[2]


def rows(db, name: str = "notify") -> list[tuple[object, ...]]:
    """(ID, status, debounce key, inputs) of every workflow named ``name``, oldest first."""
    return db.raw(
        "SELECT workflow_uuid, status, debounce_key, inputs FROM workflow_status "
        "WHERE name = %s ORDER BY created_at, workflow_uuid",
        (name,),
    )


def delay_until(db, workflow_id: str) -> int:
    return int(
        db.raw(
            "SELECT delay_until_epoch_ms FROM workflow_status WHERE workflow_uuid = %s",
            (workflow_id,),
        )[0][0]
    )


def end_period(db, workflow_id: str) -> None:
    """The burst's period has passed (its start time is now in the past)."""
    db.raw(
        "UPDATE workflow_status SET delay_until_epoch_ms = 1 WHERE workflow_uuid = %s",
        (workflow_id,),
    )


def notifier(make_engine, app: str = "debounce", **kwargs):
    engine = make_engine(app, application_version="v1", **kwargs)

    @engine.workflow(name="notify")
    def notify(ctx, text):
        return f"sent {text}"

    return engine, notify


def test_a_burst_is_one_workflow_started_with_the_latest_input(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    debouncer = engine.debouncer(notify, period=HOUR)  # made before launch()
    assert (
        isinstance(debouncer, Debouncer) and repr(debouncer) == "<Debouncer 'notify' period=3600>"
    )
    engine.launch()
    handles = [debouncer.debounce("user-1", f"edit {i}") for i in range(5)]
    assert len({h.workflow_id for h in handles}) == 1
    ((workflow_id, status, key, inputs),) = rows(db)
    assert (workflow_id, status, key) == (handles[0].workflow_id, "DELAYED", "user-1")
    assert "edit 4" in str(inputs)
    end_period(db, workflow_id)
    assert handles[0].get_result(timeout=60) == "sent edit 4"
    assert len(rows(db)) == 1


def test_a_burst_starts_by_itself_once_the_period_passes(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    engine.launch()
    debouncer = engine.debouncer(notify, period=0.2)  # made after launch()
    handle = debouncer.debounce("user-1", "hello")
    assert handle.get_result(timeout=60) == "sent hello"
    # That burst has started: the next debounce opens another.
    again = debouncer.debounce("user-1", "again")
    assert again.workflow_id != handle.workflow_id
    assert again.get_result(timeout=60) == "sent again"


def test_each_debounce_pushes_the_start_forward_but_max_wait_caps_it(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    engine.launch()
    debouncer = engine.debouncer(notify, period=HOUR, max_wait=2 * HOUR)
    first = debouncer.debounce("k", 1)
    start = delay_until(db, first.workflow_id)
    # The burst began 7,000 s ago: one period from now would pass the cap.
    db.raw(
        "UPDATE workflow_status SET created_at = created_at - 7000000 WHERE workflow_uuid = %s",
        (first.workflow_id,),
    )
    (created,) = db.raw(
        "SELECT created_at FROM workflow_status WHERE workflow_uuid = %s", (first.workflow_id,)
    )[0]
    assert debouncer.debounce("k", 2).workflow_id == first.workflow_id
    assert delay_until(db, first.workflow_id) == int(created) + 2 * HOUR * 1000
    assert delay_until(db, first.workflow_id) < start
    # Without max_wait, each debounce moves the start to one period after it.
    uncapped = engine.debouncer(notify, period=HOUR)
    other = uncapped.debounce("other", 1)
    db.raw(
        "UPDATE workflow_status SET created_at = created_at - 7000000, "
        "delay_until_epoch_ms = delay_until_epoch_ms - 10000 WHERE workflow_uuid = %s",
        (other.workflow_id,),
    )
    before = delay_until(db, other.workflow_id)
    uncapped.debounce("other", 2)
    assert delay_until(db, other.workflow_id) > before


def test_max_wait_starts_a_burst_that_never_pauses(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    engine.launch()
    debouncer = engine.debouncer(notify, period=0.5, max_wait=1.0)
    first = debouncer.debounce("busy", 0)
    n = 0

    def started() -> bool:
        nonlocal n
        n += 1
        debouncer.debounce("busy", n)  # a debounce every poll: the period never passes
        found = engine.get_workflow_status(first.workflow_id)
        return found is not None and found.status != Status.DELAYED

    wait_until(started, what="max_wait to start the burst")
    assert str(first.get_result(timeout=60)).startswith("sent ")


def test_separate_keys_are_separate_bursts(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    engine.launch()
    debouncer = engine.debouncer(notify, period=HOUR)
    a = [debouncer.debounce("a", f"a{i}") for i in range(3)]
    b = [debouncer.debounce("b", f"b{i}") for i in range(3)]
    assert len({h.workflow_id for h in a}) == 1 and len({h.workflow_id for h in b}) == 1
    assert a[0].workflow_id != b[0].workflow_id
    assert sorted(str(r[2]) for r in rows(db)) == ["a", "b"]
    for handle in (a[0], b[0]):
        end_period(db, handle.workflow_id)
    assert (a[0].get_result(timeout=60), b[0].get_result(timeout=60)) == ("sent a2", "sent b2")


def test_two_engines_debouncing_one_key_make_one_workflow(make_engine, db) -> None:
    engines = [notifier(make_engine, app=f"debounce-{i}")[0] for i in range(2)]
    debouncers = [e.debouncer("notify", period=HOUR) for e in engines]
    for e in engines:
        e.launch()
    barrier = threading.Barrier(4)
    ids: list[str] = []
    lock = threading.Lock()

    def hammer(debouncer, tag: str) -> None:
        barrier.wait()
        for i in range(10):
            handle = debouncer.debounce("shared", f"{tag}{i}")
            with lock:
                ids.append(handle.workflow_id)

    threads = [
        threading.Thread(target=hammer, args=(debouncers[i % 2], f"t{i}-")) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(ids) == 40 and len(set(ids)) == 1
    ((workflow_id, status, key, _),) = rows(db)
    assert (workflow_id, status, key) == (ids[0], "DELAYED", "shared")
    end_period(db, workflow_id)
    assert engines[0].retrieve_workflow(workflow_id).get_result(timeout=60).startswith("sent t")
    assert len(rows(db)) == 1


def test_a_client_joins_the_engines_burst(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    engine.launch()
    handle = engine.debouncer(notify, period=HOUR).debounce("k", "from the engine")
    client = Client(db.url, schema=db.schema)
    try:
        joined = client.debouncer("notify", period=HOUR).debounce("k", "from a client")
        assert joined.workflow_id == handle.workflow_id
        end_period(db, handle.workflow_id)
        assert joined.get_result(timeout=60) == "sent from a client"
    finally:
        client.close()


def test_a_burst_due_but_not_yet_started_is_started_and_a_new_one_opens(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    debouncer = engine.debouncer(notify, period=HOUR)
    first = debouncer.debounce("k", "first")  # not launched: nothing promotes it
    end_period(db, first.workflow_id)
    second = debouncer.debounce("k", "second")
    assert second.workflow_id != first.workflow_id
    assert [(r[0], r[1]) for r in rows(db)] == [
        (first.workflow_id, "ENQUEUED"),
        (second.workflow_id, "DELAYED"),
    ]
    engine.launch()
    assert first.get_result(timeout=60) == "sent first"


CRASHING = """
import os, signal, sys
from engine import Engine
engine = Engine("crashing", sys.argv[1], schema=sys.argv[2], application_version="v1")

@engine.workflow(name="notify")
def notify(ctx, text):
    return f"sent {text}"

debouncer = engine.debouncer(notify, period=0.5)
handle = debouncer.debounce("k", "one")
debouncer.debounce("k", "two")
print(handle.workflow_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_pending_burst_survives_a_crash_and_another_engine_starts_it(make_engine, db) -> None:
    crashed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASHING), db.url, db.schema],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert crashed.returncode == -9, crashed.stderr
    workflow_id = crashed.stdout.strip()
    assert [(r[0], r[1]) for r in rows(db)] == [(workflow_id, "DELAYED")]
    engine, _ = notifier(make_engine, app="restarted")
    engine.launch()
    assert engine.retrieve_workflow(workflow_id).get_result(timeout=60) == "sent two"


def test_debounce_async_joins_the_same_burst(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    engine.launch()
    debouncer = engine.debouncer(notify, period=HOUR)

    async def burst() -> list[str]:
        handles = [await debouncer.debounce_async("k", f"v{i}") for i in range(3)]
        return [h.workflow_id for h in handles]

    ids = asyncio.run(burst())
    assert len(set(ids)) == 1 and ids[0] == debouncer.debounce("k", "v3").workflow_id
    end_period(db, ids[0])
    assert engine.retrieve_workflow(ids[0]).get_result(timeout=60) == "sent v3"


def test_a_workflow_body_may_not_debounce_but_its_step_may(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    debouncer = engine.debouncer(notify, period=HOUR)

    @engine.step(name="debounce_step")
    def debounce_step(key):
        return debouncer.debounce(key, "from a step").workflow_id

    @engine.workflow(name="caller")
    def caller(ctx, how):
        if how == "body":
            return debouncer.debounce("body", "x").workflow_id
        return debounce_step("step")

    engine.launch()
    with pytest.raises(EngineError, match="from a step"):
        engine.start_workflow(caller, "body").get_result(timeout=60)
    burst = engine.start_workflow(caller, "step").get_result(timeout=60)
    assert [(r[0], r[2]) for r in rows(db)] == [(burst, "step")]


def test_bad_input_is_refused_and_writes_nothing(make_engine, db) -> None:
    engine, notify = notifier(make_engine)
    engine.queue("declared")
    engine.launch()
    for kwargs, error, match in (
        ({"period": 0}, ValueError, "period must be > 0"),
        ({"period": -1}, ValueError, "period must be"),
        ({"period": "soon"}, ValueError, "period must be"),
        ({"period": 10, "max_wait": 5}, ValueError, "max_wait .* must be >= period"),
        ({"period": 10, "queue": "nowhere"}, EngineError, "unknown queue 'nowhere'"),
    ):
        with pytest.raises(error, match=match):
            engine.debouncer(notify, **kwargs)
    with pytest.raises(EngineError, match="not a registered workflow"):
        engine.debouncer("nobody", period=1)
    debouncer = engine.debouncer(notify, period=HOUR, queue="declared")
    for key in (5, "", None, "x" * 201):
        with pytest.raises(TypeError, match="debounce key must be a non-empty string"):
            debouncer.debounce(key, "input")  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        debouncer.debounce("k", object())
    assert rows(db) == []
    # A bad input for a burst that is open leaves the burst's input as it was.
    handle = debouncer.debounce("k", "good")
    with pytest.raises(SerializationError):
        debouncer.debounce("k", {1, 2})
    ((_, _, _, inputs),) = rows(db)
    assert "good" in str(inputs)
    end_period(db, handle.workflow_id)
    assert handle.get_result(timeout=60) == "sent good"
