"""What the console's pages say, not only that they answer 200: counts, rates, the stuck list,
queue depths, schedules, pagination ties, escaping, permissions on every operator page."""

from __future__ import annotations

import itertools
import re
import threading

import pytest
from django.test import Client as WebClient

import tests.console.console_site as site
from console import actions, bulk_request
from console.models import AuditRecord, AuditTarget, ReadOnlyError
from engine import WorkflowFailedError
from tests.console.test_console_operate import app, start_blocked, user, wait_for  # noqa: F401
from tests.support import wait_until

SCRIPT = "<script>alert('content')</script>"


def text_of(response) -> str:  # type: ignore[no-untyped-def]
    """The page's visible text, whitespace collapsed (so assertions read like the page)."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return " ".join(body.split())


@pytest.fixture
def shop(make_engine, db):
    """Three successes, one failure, one blocked on a queue behind a running one, and a
    schedule; the console aimed at the database."""
    engine = make_engine("content-app", application_version="v-content")
    gate = threading.Event()

    @engine.workflow(name="ok")
    def ok(ctx, x):
        return {"echo": x}

    @engine.workflow(name="bad")
    def bad(ctx, x):
        raise ValueError("no")

    @engine.workflow(name="slow")
    def slow(ctx, x):
        ctx.run_step(lambda: gate.wait(30))
        return x

    @engine.workflow(name="ticker", schedule="*/30 * * * * *")
    def ticker(ctx, tick):
        return tick.isoformat()

    serial = engine.queue("serial", concurrency=1)
    engine.launch()
    for i in range(3):
        engine.start_workflow(ok, {"html": SCRIPT, "n": i}, workflow_id=f"ok-{i}").get_result(
            timeout=20
        )
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(bad, 0, workflow_id="bad-0").get_result(timeout=20)
    site.point_engine_database(db)
    yield engine, gate, serial, slow
    gate.set()


def test_overview_counts_failure_rate_and_only_stuck_workflows(shop, db) -> None:
    db.raw(
        "UPDATE workflow_status SET status = 'PENDING', executor_id = 'ghost' "
        "WHERE workflow_uuid = 'ok-2'"
    )
    page = user("viewer").get("/?window=1h")
    assert page.context["counts"] == {"SUCCESS": 2, "ERROR": 1, "PENDING": 1}
    assert page.context["failure_rate"] == pytest.approx(100 / 3)
    assert [w.workflow_uuid for w in page.context["stuck"]] == ["ok-2"]
    text = text_of(page)
    assert "33.3% failure rate" in text
    assert "ok-2 ok on ghost" in text
    assert "4 started in 1h" in text


def test_queues_page_shows_depth_running_and_limits(shop) -> None:
    engine, gate, serial, slow = shop
    first = engine.start_workflow(slow, 1, queue=serial, workflow_id="q-1")
    wait_for("q-1", "PENDING")  # claimed: the queue's one slot is taken
    for i in (2, 3):
        engine.start_workflow(slow, i, queue=serial, workflow_id=f"q-{i}")
    page = user("viewer").get("/queues/")
    (info,) = [q for q in page.context["queues"] if q.name == "serial"]
    assert (info.enqueued, info.running, info.delayed) == (2, 1, 0)
    text = text_of(page)
    assert "serial 2 1 of 1 0 0 0 0 at most 1 at once" in text  # handed over: 0
    gate.set()
    assert first.get_result(timeout=20) == 1


def test_schedules_page_shows_the_cron_in_words_and_next_ticks(shop) -> None:
    page = user("viewer").get("/schedules/")
    (schedule,) = page.context["schedules"]
    assert schedule.name == "ticker" and schedule.cron == "*/30 * * * * *"
    assert len(schedule.next_ticks) >= 3
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(schedule.next_ticks)}
    assert gaps == {30.0}
    assert "*/30 * * * * *" in text_of(page)


def test_header_escapes_input_and_output(shop) -> None:
    page = user("viewer").get("/workflows/ok-1/")
    body = page.content.decode()
    assert SCRIPT not in body
    assert body.count("&lt;script&gt;alert(&#x27;content&#x27;)&lt;/script&gt;") >= 2  # in, out


def test_keyset_pagination_breaks_ties_on_equal_created_at(shop, db) -> None:
    engine = shop[0]
    for i in range(120):
        engine.start_workflow("ok", i, workflow_id=f"tie-{i:03d}")
    db.raw("UPDATE workflow_status SET created_at = 1700000000000 WHERE workflow_uuid LIKE 'tie-%'")
    web = user("viewer")
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = web.get("/workflows/", {"id": "tie-", "cursor": cursor})
        seen += [w.workflow_uuid for w in page.context["rows"]]
        cursor = page.context["next_cursor"]
        if not cursor:
            break
    assert seen == [f"tie-{i:03d}" for i in reversed(range(120))]


def test_bulk_progress_needs_the_operate_permission(app) -> None:
    engine, gate = app
    start_blocked(engine, gate, "perm-1")
    job = bulk_request.request(actions.Actor("op"), "cancel", ["perm-1"], "r")
    assert user("viewer").get(f"/bulk/{job.pk}/").status_code == 403
    assert WebClient().get(f"/bulk/{job.pk}/").status_code == 302  # to the login page
    operator = user("operator")
    assert operator.get(f"/bulk/{job.pk}/").status_code == 200
    wait_until(
        lambda: "1 of 1 — done" in text_of(operator.get(f"/bulk/{job.pk}/")),
        what="the bulk action to finish",
    )
    gate.set()


def test_the_audit_trail_cannot_be_deleted_in_bulk(app) -> None:
    record = actions.intend(actions.Actor("op"), "cancel", ["x"], "r")
    for manager in (AuditRecord.objects, AuditTarget.objects):
        with pytest.raises(ReadOnlyError):
            manager.all().delete()
        with pytest.raises(ReadOnlyError):
            manager.filter(pk=record.pk).delete()
        with pytest.raises(ReadOnlyError):
            manager.all().update(pk=1)
    with pytest.raises(ReadOnlyError):
        record.delete()
    assert AuditRecord.objects.filter(pk=record.pk).exists()
