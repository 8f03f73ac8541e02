"""Issue 15, part 4: partitioned queues (both backends)."""

from __future__ import annotations

import threading

import pytest

from engine import Client, Engine, Status
from engine.partitions import Partition, allot
from tests.support import wait_until


def test_allot_is_round_robin_within_each_partitions_room() -> None:
    parts = [Partition("big", 0, 10_000), Partition("a", 0, 3), Partition("b", 1, 5)]
    assert allot(parts, 4, 2) == {"big": 2, "a": 1, "b": 1}
    assert allot(parts, 2, 2) == {"big": 1, "a": 1}
    assert allot(parts, 100, 2) == {"big": 2, "a": 2, "b": 1}
    assert allot([Partition("full", 2, 9)], 5, 2) == {}


def running_by_partition(engine: Engine, ids: dict[str, list[str]]) -> dict[str, int]:
    counts = {}
    for key, workflow_ids in ids.items():
        found = [engine.get_workflow_status(w) for w in workflow_ids]
        counts[key] = sum(1 for s in found if s is not None and s.status == Status.PENDING)
    return counts


def test_at_most_partition_concurrency_of_one_partition_run(make_engine) -> None:
    engine = make_engine("partitions")
    gate = threading.Event()
    tenants = engine.queue("tenants", partition_concurrency=1)
    other = engine.queue("other")

    @engine.workflow(name="task")
    def task(ctx, n):
        ctx.run_step(lambda: gate.wait(60))
        return n

    @engine.workflow(name="ping")
    def ping(ctx):
        return "pong"

    engine.launch()
    try:
        ids = {
            key: [
                engine.start_workflow(task, i, queue=tenants, partition_key=key).workflow_id
                for i in range(count)
            ]
            for key, count in (("a", 3), ("b", 1))
        }
        wait_until(
            lambda: running_by_partition(engine, ids) == {"a": 1, "b": 1}, what="one each running"
        )
        for _ in range(2):  # the worker made passes since: still one of "a"
            assert engine.start_workflow("ping", queue=other).get_result(timeout=30) == "pong"
        assert running_by_partition(engine, ids) == {"a": 1, "b": 1}
        status = engine.get_workflow_status(ids["a"][0])
        assert status is not None and status.partition_key == "a"
        assert engine.list_workflows(name="task")[0].partition_key in ("a", "b")
    finally:
        gate.set()
    for workflow_ids in ids.values():
        for w in workflow_ids:
            assert engine.retrieve_workflow(w).get_result(timeout=30) is not None


def test_partitions_are_served_in_turn_so_a_busy_one_starves_no_other(make_engine, db) -> None:
    engine = make_engine("fairness", max_workflow_threads=2)
    started: list[str] = []
    tenants = engine.queue("tenants", partition_concurrency=2)

    @engine.workflow(name="tenant_task")
    def tenant_task(ctx, key):
        ctx.run_step(lambda: started.append(key))
        return key

    engine.launch()
    engine.pause_queue("tenants")  # enqueue everything first, then let the worker choose
    handles = [
        engine.start_workflow(tenant_task, "big", queue=tenants, partition_key="big")
        for _ in range(20)
    ]
    with Client(db.url, schema=db.schema) as client:
        for key in ("s1", "s2", "s3"):
            handles.append(client.start_workflow("tenant_task", key, queue="tenants",
                                                 partition_key=key))  # fmt: skip
        engine.resume_queue("tenants")
        for handle in handles:
            handle.get_result(timeout=60)
    assert len(started) == 23
    for key in ("s1", "s2", "s3"):
        assert started.index(key) < 8, started  # not after the 20 of the busy partition


def test_partition_keys_are_checked_before_anything_is_written(make_engine, db) -> None:
    engine = make_engine("partition-checks")
    tenants = engine.queue("tenants", partition_concurrency=2)
    plain = engine.queue("plain")
    with pytest.raises(ValueError, match="partition_concurrency must be an int >= 1, got 0"):
        engine.queue("neg", partition_concurrency=0)

    @engine.workflow(name="w")
    def w(ctx):
        return 1

    engine.launch()
    cases = [
        (dict(queue=tenants), "queue 'tenants' is partitioned: pass partition_key="),
        (dict(queue=plain, partition_key="t1"), "queue 'plain' has no partitions"),
        (dict(partition_key="t1"), "needs? a queue="),
        (dict(queue=tenants, partition_key=""), "partition_key must be a non-empty string"),
        (dict(queue=tenants, partition_key=7), "partition_key must be a non-empty string"),
    ]
    for i, (kwargs, message) in enumerate(cases):
        with pytest.raises(ValueError, match=message):
            engine.start_workflow(w, workflow_id=f"bad-{i}", **kwargs)
        assert engine.get_workflow_status(f"bad-{i}") is None
    tenants_info = next(q for q in engine.list_queues() if q.name == "tenants")
    assert tenants_info.partition_concurrency == 2
