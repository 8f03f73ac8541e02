"""Overview charts: a single bucket still draws; cancelled workflows are not throughput."""

from __future__ import annotations

from console import charts
from tests.console.test_console_operate import app  # noqa: F401


def test_a_single_bucket_draws_a_dot_and_lines_have_their_points() -> None:
    single = charts.lines({"p50": [None, 2.0, None], "p95": [None, None, None]})
    (p50, p95) = single.lines
    assert p50["dots"] == [(300.0, 4.0)] and p50["points"] == "300.0,4.0"
    assert p95["dots"] == [] and p95["points"] == ""


def test_cancelled_workflows_are_neither_throughput_nor_latency(app) -> None:
    import time

    from console import stats
    from tests.console.test_console_operate import start_blocked, wait_for

    engine, gate = app
    engine.start_workflow("held", 1, workflow_id="chart-ok").get_result(timeout=20)
    start_blocked(engine, gate, "chart-cancelled")
    engine.cancel_workflow("chart-cancelled")
    wait_for("chart-cancelled", "CANCELLED")
    gate.set()
    now = time.time_ns() // 1_000_000
    series = stats.series(now - 3_600_000, now)
    assert sum(series.completed) == 1 and sum(series.failed) == 0
    assert len([v for v in series.p50 if v is not None]) == 1
