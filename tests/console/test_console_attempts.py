"""Attempts and tracebacks in the console (issue 12): the step page's attempts table with the
backoff gaps, tracebacks of failed steps and workflows (escaped, bounded), timeline markers."""

from __future__ import annotations

import re

import pytest
from django.db import connections

import tests.console.console_site as site
from console.models import AuditRecord  # noqa: F401 - the console's tables are set up
from engine import WorkflowFailedError
from tests.console.test_console_content import text_of
from tests.console.test_console_operate import user


@pytest.fixture
def failing(make_engine, db):
    engine = make_engine("attempts-app")
    calls = {"n": 0}

    @engine.step(name="flaky", max_attempts=3, interval_seconds=0.05, backoff_rate=2.0)
    def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise ValueError(f"<b>try {calls['n']}</b>")
        return "ok"

    @engine.step(name="doomed", max_attempts=2, interval_seconds=0.01, backoff_rate=1.0)
    def doomed():
        raise KeyError("<script>alert(1)</script>")

    @engine.workflow(name="att.flaky")
    def flaky_wf(ctx):
        return flaky()

    @engine.workflow(name="att.doomed")
    def doomed_wf(ctx):
        doomed()

    engine.launch()
    engine.start_workflow(flaky_wf, workflow_id="att-1").get_result(timeout=30)
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(doomed_wf, workflow_id="att-2").get_result(timeout=30)
    site.point_engine_database(db)
    yield engine
    connections["waymark"].close()


def test_the_step_page_lists_failed_attempts_with_errors_tracebacks_and_gaps(failing) -> None:
    page = user("viewer").get("/workflows/att-1/steps/1/")
    assert page.status_code == 200
    rows = page.context["attempts"]
    assert [r.attempt for r in rows] == [1, 2]
    assert rows[0].gap_ms is not None and rows[0].gap_ms >= 40  # interval 0.05 s
    assert rows[1].gap_ms is None
    body = page.content.decode()
    assert "Failed attempts (2)" in body
    assert "&lt;b&gt;try 1&lt;/b&gt;" in body and "<b>try 1</b>" not in body
    assert body.count('<pre class="traceback mono">') == 2
    assert "backoff" in text_of(page) and "then the attempt that succeeded" in text_of(page)
    assert 'id="step-traceback"' not in body  # the step succeeded in the end


def test_failed_steps_and_workflows_show_their_tracebacks_escaped(failing) -> None:
    web = user("viewer")
    step = web.get("/workflows/att-2/steps/1/").content.decode()
    assert 'id="step-traceback"' in step
    assert re.search(r"KeyError: .*&lt;script&gt;alert\(1\)&lt;/script&gt;", step)
    assert "<script>alert(1)</script>" not in step
    detail = web.get("/workflows/att-2/").content.decode()
    assert 'id="workflow-traceback"' in detail and "in doomed_wf" in detail
    assert "<script>alert(1)</script>" not in detail
    assert 'id="workflow-traceback"' not in web.get("/workflows/att-1/").content.decode()


def test_the_timeline_marks_failed_attempts_and_their_backoff_gaps(failing) -> None:
    page = user("viewer").get("/workflows/att-1/")
    (bar,) = [b for b in page.context["timeline"].bars if b.name == "flaky"]
    assert len(bar.attempts) == 2
    first, second = bar.attempts
    assert first.gap_left is not None and first.gap_width is not None
    assert first.left <= first.gap_left < second.left  # the gap sits between the attempts
    assert second.gap_left is None
    assert "attempt 1 failed after" in first.title and "backoff" in first.title
    body = page.content.decode()
    assert body.count('class="attempt"') == 2 and body.count('class="backoff"') == 1
    assert "style=" not in body.split('id="timeline"')[1].split("</section>")[0]
