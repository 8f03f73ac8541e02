"""FAIR: fairness of a partitioned queue (issue 15).

One partition holds 10,000 waiting workflows (one trivial step each); then 50 other
partitions get 10 each. Fair service means the small partitions do not wait behind the big
one: each small workflow should finish within a few seconds of its enqueue. Reported: the
small workflows' enqueue-to-finish latency (p50/p95/max), how many of the big partition ran
meanwhile, and the whole run's time. ``python -m bench --db sqlite --only FAIR``.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import setup
from engine import Engine

THREADS = 16
PARTITION_CONCURRENCY = 4


def w8_partition_fairness(target: setup.Target, quick: bool) -> dict[str, Any]:
    big_n = 2_000 if quick else 10_000
    small_partitions, small_each = 50, 10
    engine = Engine("bench-w8", target.url, schema=target.schema, max_workflow_threads=THREADS)
    tenants = engine.queue("tenants", partition_concurrency=PARTITION_CONCURRENCY)

    @engine.step(name="noop")
    def noop(x: int) -> int:
        return x + 1

    @engine.workflow(name="tenant_job")
    def tenant_job(ctx, x):
        return noop(x)

    engine.launch()
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:  # concurrent enqueues share commits
            big = list(
                pool.map(
                    lambda i: (
                        engine.start_workflow(
                            tenant_job, i, queue=tenants, partition_key="big"
                        ).workflow_id
                    ),
                    range(big_n),
                )
            )
        enqueued_big = time.perf_counter() - started
        small_started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            small = list(
                pool.map(
                    lambda i: engine.start_workflow(
                        tenant_job, i, queue=tenants, partition_key=f"t{i % small_partitions}"
                    ),
                    range(small_partitions * small_each),
                )
            )
        for handle in small:
            handle.get_result(timeout=600)
        small_done = time.perf_counter() - small_started
        big_done_then = setup.count(
            target,
            "SELECT count(*) FROM workflow_status WHERE partition_key = 'big' "
            "AND status = 'SUCCESS'",
        )
        latencies = []
        for handle in small:
            status = engine.get_workflow_status(handle.workflow_id)
            assert status is not None
            finished = setup.count(
                target,
                "SELECT completed_at FROM workflow_status WHERE workflow_uuid = "
                f"'{handle.workflow_id}'",
            )
            latencies.append((finished - int(status.created_at.timestamp() * 1000)) / 1000)
        for workflow_id in big:
            engine.retrieve_workflow(workflow_id).get_result(timeout=600)
        elapsed = time.perf_counter() - started
    finally:
        engine.shutdown()
    latencies.sort()
    return {
        "workload": "FAIR",
        "n": big_n + len(small),
        "seconds": round(elapsed, 2),
        "per_sec": round((big_n + len(small)) / elapsed, 1),
        "ms_each": round(elapsed / (big_n + len(small)) * 1000, 3),
        "big_partition": big_n,
        "small_partitions": small_partitions,
        "small_each": small_each,
        "partition_concurrency": PARTITION_CONCURRENCY,
        "threads": THREADS,
        "enqueue_big_s": round(enqueued_big, 2),
        "small_all_done_s": round(small_done, 2),
        "small_latency_p50_s": round(statistics.median(latencies), 3),
        "small_latency_p95_s": round(latencies[int(len(latencies) * 0.95) - 1], 3),
        "small_latency_max_s": round(latencies[-1], 3),
        "big_done_when_small_done": big_done_then,
    }
