"""Console pages through Django's test client, on SQLite and on Postgres engine databases."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client as WebClient

import tests.console.console_site as site
from console.models import ReadOnlyError, Step, Workflow
from engine import WorkflowFailedError

XSS = "<script>alert('x')</script>"


@pytest.fixture
def history(make_engine, db):
    """An engine database with a little of everything, and the console aimed at it."""
    engine = make_engine("console-app", application_version="v-test")
    release = threading.Event()

    @engine.step(name="echo")
    def echo(value):
        return value

    @engine.workflow(name="shop.checkout")
    def checkout(ctx, order):
        echo({"order": order, "note": XSS})
        ctx.set_event("stage", "paid")
        return {"order": order}

    @engine.workflow(name="shop.refund")
    def refund(ctx, order):
        echo(order)
        raise ValueError(f"refund refused for {order} {XSS}")

    @engine.workflow(name="shop.parent")
    def parent(ctx, n):
        kids = [ctx.start_workflow(checkout, i) for i in range(n)]
        return [k.get_result() for k in kids]

    @engine.workflow(name="shop.waiting")
    def waiting(ctx):
        echo("started")
        release.wait(30)
        return "released"

    engine.launch()
    for i in range(3):
        engine.start_workflow(checkout, i, workflow_id=f"order-{i}").get_result(timeout=10)
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(refund, 7, workflow_id="refund-7").get_result(timeout=10)
    engine.start_workflow(parent, 2, workflow_id="parent-1").get_result(timeout=10)
    engine.start_workflow(waiting, workflow_id="waiting-1")
    site.point_engine_database(db)
    yield engine
    release.set()
    connections["waymark"].close()


@pytest.fixture
def web(history):
    user, _ = get_user_model().objects.get_or_create(username="viewer")
    client = WebClient()
    client.force_login(user)
    return client


PAGES = [
    "/",
    "/workflows/",
    "/workflows/order-0/",
    "/workflows/order-0/steps/1/",
    "/queues/",
    "/schedules/",
    "/versions/",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_requires_a_login(history, path) -> None:
    response = WebClient().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders(web, path) -> None:
    response = web.get(path)
    assert response.status_code == 200, response.content[:500]
    assert b"htmx" in response.content  # vendored htmx is loaded on every page


def ids(response) -> list[str]:
    return [w.workflow_uuid for w in response.context["rows"]]


def test_list_filters(web, history) -> None:
    assert ids(web.get("/workflows/?status=ERROR")) == ["refund-7"]
    assert set(ids(web.get("/workflows/?status=ERROR&status=PENDING"))) == {"refund-7", "waiting-1"}
    assert set(ids(web.get("/workflows/?name=shop.checkout"))) == {
        "order-0",
        "order-1",
        "order-2",
        "parent-1-1",
        "parent-1-2",
    }
    assert ids(web.get("/workflows/?id=order-"))[::-1] == ["order-0", "order-1", "order-2"]
    assert set(ids(web.get("/workflows/?parent=parent-1"))) == {"parent-1-1", "parent-1-2"}
    assert len(ids(web.get("/workflows/?version=v-test"))) == 8
    assert ids(web.get("/workflows/?version=other")) == []
    assert len(ids(web.get("/workflows/?executor=local&since=1h"))) == 8
    assert ids(web.get("/workflows/?queue=nothing")) == []
    assert ids(web.get("/workflows/?before=2000-01-01T00:00")) == []
    assert len(ids(web.get("/workflows/?after=2000-01-01T00:00:00%2B00:00"))) == 8
    page = web.get("/workflows/?status=SUCCESS")
    assert page.context["count"] == 6 and not page.context["capped"]
    assert b"6 matching" in page.content


@pytest.mark.parametrize(
    "query, reason",
    [
        ("status=DONE", b"is not a status"),
        ("since=2y", b"is not a window"),
        ("after=yesterday", b"is not a date-time"),
        ("after=2026-01-02T00:00&before=2026-01-01T00:00", b"after must be earlier"),
        ("cursor=nonsense", b"is not a page cursor"),
        ("name=" + "x" * 600, b"longer than 500"),
    ],
)
def test_bad_query_parameters_are_a_400_page_with_the_reason(web, query, reason) -> None:
    response = web.get(f"/workflows/?{query}")
    assert response.status_code == 400
    assert reason in response.content


def test_keyset_pagination(web, history) -> None:
    for i in range(55):
        history.start_workflow("shop.checkout", i, workflow_id=f"bulk-{i:03d}")
    first = web.get("/workflows/?id=bulk-")
    assert len(ids(first)) == 50
    cursor = first.context["next_cursor"]
    assert cursor
    second = web.get(f"/workflows/?id=bulk-&cursor={cursor}")
    assert len(ids(second)) == 5 and not second.context["next_cursor"]
    assert sorted(ids(first) + ids(second)) == [f"bulk-{i:03d}" for i in range(55)]


def test_detail_shows_header_timeline_steps_events_and_escapes(web) -> None:
    response = web.get("/workflows/order-1/")
    body = response.content
    assert response.status_code == 200
    assert b"shop.checkout" in body and b"order-1" in body and b"v-test" in body
    assert b'class="bar kind-compute outcome-ok"' in body
    assert b"waymark.set_event" in body and b"stage" in body
    assert XSS.encode() not in body
    assert b"&lt;script&gt;" in body
    failed = web.get("/workflows/refund-7/").content
    assert b"ValueError" in failed and XSS.encode() not in failed
    parent = web.get("/workflows/parent-1/").content
    assert b"parent-1-1" in parent and b"kind-child" in parent


def test_unknown_workflow_and_step_are_404_pages(web) -> None:
    response = web.get("/workflows/no-such-id/")
    assert response.status_code == 404
    assert b"no-such-id" in response.content
    assert web.get("/workflows/order-0/steps/99/").status_code == 404


def test_step_page_and_fragment_show_the_full_payload(web) -> None:
    full = web.get("/workflows/order-0/steps/1/")
    assert b"&lt;script&gt;" in full.content and XSS.encode() not in full.content
    fragment = web.get("/workflows/order-0/steps/1/", HTTP_HX_REQUEST="true")
    assert fragment.content.lstrip().startswith(b"<pre")


def test_live_fragments_answer_cheaply_and_stop_when_finished(web) -> None:
    finished = web.get("/workflows/order-0/").context["fingerprint"]
    response = web.get(f"/workflows/order-0/?fragment=live&v={finished}", HTTP_HX_REQUEST="true")
    assert response.status_code == 286  # finished and unchanged: stop polling
    running = web.get("/workflows/waiting-1/").context["fingerprint"]
    same = web.get(f"/workflows/waiting-1/?fragment=live&v={running}", HTTP_HX_REQUEST="true")
    assert same.status_code == 204  # unchanged: nothing to swap
    fresh = web.get("/workflows/waiting-1/?fragment=live&v=0", HTTP_HX_REQUEST="true")
    assert fresh.status_code == 200 and b'id="live"' in fresh.content
    rows = web.get("/workflows/?status=PENDING", HTTP_HX_REQUEST="true")
    assert rows.status_code == 200 and b'id="workflow-rows"' in rows.content
    again = web.get(
        f"/workflows/?status=PENDING&v={rows.context['fingerprint']}", HTTP_HX_REQUEST="true"
    )
    assert again.status_code == 204


def test_versions_page_warns_about_work_no_live_executor_runs(web, history) -> None:
    body = web.get("/versions/").content
    assert b"v-test" in body
    # The test engine heartbeats, so its version is live: no warning yet.
    assert b"no live executor runs it" not in body
    from django.db import connections as conns

    from console.models import Executor

    with conns["waymark"].cursor() as cur:
        cur.execute("UPDATE executors SET last_heartbeat = 0")
    assert b"no live executor runs it" in web.get("/versions/").content
    assert Executor.objects.count() >= 1


def test_models_are_read_only(history) -> None:
    workflow = Workflow.objects.get(workflow_uuid="order-0")
    with pytest.raises(ReadOnlyError):
        workflow.save()
    with pytest.raises(ReadOnlyError):
        Workflow.objects.filter(workflow_uuid="order-0").update(status="SUCCESS")
    with pytest.raises(ReadOnlyError):
        Step.objects.filter(workflow_uuid="order-0").delete()
    assert workflow.record.status == "SUCCESS"
    assert workflow.record.input == 0


def test_models_match_the_live_schema(history, db) -> None:
    from console import models

    connection = connections["waymark"]
    with connection.cursor() as cur:
        for model in (
            models.Workflow,
            models.Step,
            models.Notification,
            models.Event,
            models.Executor,
        ):
            live = {
                c.name
                for c in connection.introspection.get_table_description(cur, model._meta.db_table)
            }
            mirrored = {f.column for f in model._meta.concrete_fields}
            assert mirrored == live, model.__name__


def test_list_queries_use_indexes_on_postgres(history, db) -> None:
    """EXPLAIN the list page's queries on a table big enough for the planner to care."""
    import datetime as dt

    from django.http import QueryDict

    from console import detail, filters

    if db.backend != "postgres":
        pytest.skip("plans are checked on Postgres, the production database")
    db.raw(
        "INSERT INTO workflow_status (workflow_uuid, status, name, inputs, created_at, "
        "updated_at, recovery_attempts, priority, serialization) "
        "SELECT 'seed-' || lpad(i::text, 6, '0'), "
        "(ARRAY['SUCCESS','ERROR','PENDING','CANCELLED','ENQUEUED'])[1 + i % 5], "
        "'app.wf_' || (i % 10), '{}', 1700000000000 + i, 1700000000000 + i, 0, 0, "
        "'portable_json' FROM generate_series(1, 30000) AS i"
    )
    db.raw("ANALYZE workflow_status")
    now = dt.datetime.now(dt.UTC)
    for query in ("", "status=ERROR", "name=app.wf_3", "id=seed-0123", "parent=x", "queue=q"):
        f = filters.parse(QueryDict(query))
        qs = filters.apply(Workflow.objects.only(*detail.LIST_FIELDS), f, now)
        plan = qs.order_by("-created_at", "-workflow_uuid")[:51].explain()
        assert "Seq Scan" not in plan, (query, plan)
        assert "Index" in plan, (query, plan)
        count_plan = qs.order_by()[: filters.COUNT_CAP + 1].explain()
        assert "Limit" in count_plan  # the count is capped, never an unbounded COUNT(*)
        if query:  # unfiltered, the capped count may read the first 10,001 rows of the heap
            assert "Seq Scan" not in count_plan, (query, count_plan)


def test_an_unreachable_database_is_a_friendly_503(web, db) -> None:
    from django.db import connections as conns

    conns["waymark"].close()
    saved = dict(conns.settings["waymark"])
    conns.settings["waymark"] = {
        **saved,
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "nodb",
        "HOST": "127.0.0.1",
        "PORT": "1",
        "USER": "nobody",
        "OPTIONS": {"connect_timeout": 2},
    }
    del conns["waymark"]
    try:
        response = web.get("/workflows/")
        assert response.status_code == 503
        assert b"The database is not answering" in response.content
        assert b"Traceback" not in response.content
        assert response["Retry-After"] == "10"
    finally:
        conns["waymark"].close()
        conns.settings["waymark"] = saved
        del conns["waymark"]
    assert web.get("/workflows/").status_code == 200
