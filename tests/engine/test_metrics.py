"""Worker metrics: each counter and histogram moves when (and only when) its event happens."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from engine import Engine, metrics
from tests.engine.test_recovery import rewind
from tests.support import free_port, wait_until


def sample(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


@pytest.fixture
def reg() -> CollectorRegistry:
    return CollectorRegistry()


def test_workflows_and_steps_are_counted_by_name_and_outcome(make_engine, reg) -> None:
    engine: Engine = make_engine(metrics=metrics.Metrics(reg))
    tries = {"n": 0}

    @engine.step(name="flaky", max_attempts=3, interval_seconds=0.01)
    def flaky() -> int:
        tries["n"] += 1
        if tries["n"] < 3:
            raise RuntimeError("not yet")
        return 1

    @engine.step(name="boom")
    def boom() -> None:
        raise ValueError("no")

    @engine.workflow(name="good")
    def good(ctx):
        return flaky()

    @engine.workflow(name="bad")
    def bad(ctx):
        boom()

    engine.launch()
    assert engine.start_workflow(good, workflow_id="g1").get_result(timeout=20) == 1
    with pytest.raises(Exception):
        engine.start_workflow(bad, workflow_id="b1").get_result(timeout=20)

    def finished() -> bool:
        return sample(reg, "waymark_workflows_finished_total", workflow="bad", status="ERROR") == 1

    wait_until(finished)
    assert sample(reg, "waymark_workflows_started_total", workflow="good") == 1
    assert sample(reg, "waymark_workflows_started_total", workflow="bad") == 1
    assert sample(reg, "waymark_workflows_finished_total", workflow="good", status="SUCCESS") == 1
    assert sample(reg, "waymark_workflows_finished_total", workflow="good", status="ERROR") == 0
    assert sample(reg, "waymark_workflow_duration_seconds_count", workflow="good") == 1
    assert sample(reg, "waymark_steps_total", step="flaky", outcome="success") == 1
    assert sample(reg, "waymark_steps_total", step="boom", outcome="error") == 1
    assert sample(reg, "waymark_step_retries_total", step="flaky") == 2
    assert sample(reg, "waymark_step_duration_seconds_count", step="flaky") == 1
    assert sample(reg, "waymark_commit_batch_size_count") >= 3  # start, steps, finish
    # Labels are names, never IDs.
    names = {s.labels.get("workflow") for m in reg.collect() for s in m.samples}
    assert "g1" not in names and "b1" not in names


def test_queue_wait_and_recoveries(make_engine, db, reg) -> None:
    engine: Engine = make_engine("q", application_version="v1", metrics=metrics.Metrics(reg))
    queue = engine.queue("jobs")

    @engine.workflow(name="job")
    def job(ctx, x):
        return x

    engine.launch()
    assert engine.start_workflow(job, 1, queue=queue).get_result(timeout=20) == 1
    wait_until(lambda: sample(reg, "waymark_queue_wait_seconds_count", queue="jobs") == 1)
    assert sample(reg, "waymark_recoveries_total") == 0
    engine.shutdown()

    handle_id = "r1"
    first_reg = CollectorRegistry()
    again: Engine = make_engine("q", application_version="v1", metrics=metrics.Metrics(first_reg))
    again.workflow(name="job")(lambda ctx, x: x)
    again.launch()
    assert again.start_workflow("job", 5, workflow_id=handle_id).get_result(timeout=20) == 5
    again.shutdown()
    rewind(db, handle_id, keep_steps=0)
    third_reg = CollectorRegistry()
    third: Engine = make_engine("q", application_version="v1", metrics=metrics.Metrics(third_reg))
    third.workflow(name="job")(lambda ctx, x: x)
    third.launch()
    assert third.retrieve_workflow(handle_id).get_result(timeout=20) == 5
    assert sample(third_reg, "waymark_recoveries_total") == 1


def test_metrics_are_served_over_http_and_off_when_disabled(make_engine) -> None:
    for _attempt in range(5):  # the free port can be taken before serve() binds it
        port = free_port()
        try:
            metrics.serve(port)
            break
        except OSError:
            continue
    else:
        pytest.fail("metrics.serve found no free port in 5 attempts")
    engine: Engine = make_engine()

    @engine.workflow(name="served")
    def served(ctx):
        return 1

    engine.launch()
    engine.start_workflow(served).get_result(timeout=20)
    assert engine.metrics is metrics.default()

    def exposed() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return 'waymark_workflows_finished_total{status="SUCCESS",workflow="served"}' in text

    wait_until(exposed)
    off: Engine = make_engine("off", metrics=False)
    assert type(off.metrics) is metrics.NullMetrics
