"""Issue 15 in the console: cancel with children (a checkbox, on by default), and the other
operator surfaces of the parity features."""

from __future__ import annotations

import html
import threading

import pytest
from django.db import connections

import tests.console.console_site as site
from console import actions
from console.models import AuditRecord, Workflow
from engine import Client, Engine
from tests.console.test_console_operate import user
from tests.support import wait_until


def status(workflow_id: str) -> str | None:
    found = Workflow.objects.filter(workflow_uuid=workflow_id).first()
    return found.status if found is not None else None


@pytest.fixture
def family(make_engine, db, monkeypatch):
    """A launched engine whose 'parent' starts a 'child' that starts a 'grandchild'; each
    waits for a message."""
    engine: Engine = make_engine("parity-console")

    @engine.workflow(name="grandchild")
    def grandchild(ctx):
        return ctx.recv(timeout=120)

    @engine.workflow(name="child")
    def child(ctx):
        ctx.start_workflow(grandchild, workflow_id=f"{ctx.workflow_id}-g")
        return ctx.recv(timeout=120)

    @engine.workflow(name="parent")
    def parent(ctx):
        ctx.start_workflow(child, workflow_id=f"{ctx.workflow_id}-c")
        return ctx.recv(timeout=120)

    engine.launch()
    site.point_engine_database(db)
    with connections["default"].cursor() as cur:
        for table in ("console_bulkjob", "console_audittarget", "console_auditrecord"):
            cur.execute(f"DELETE FROM {table}")
    client = Client(db.url, schema=db.schema)
    monkeypatch.setattr(actions, "client", lambda: client)

    def start(workflow_id: str) -> list[str]:
        engine.start_workflow("parent", workflow_id=workflow_id)
        tree = [workflow_id, f"{workflow_id}-c", f"{workflow_id}-c-g"]
        wait_until(lambda: all(status(w) == "PENDING" for w in tree), what=f"{tree} running")
        return tree

    yield start
    client.close()
    connections["waymark"].close()


def test_the_cancel_page_offers_cancel_children_ticked(family) -> None:
    family("f0")
    page = user("operator").get("/workflows/f0/cancel/").content.decode()
    assert '<input type="hidden" name="cancel_children" value="0">' in page
    assert 'name="cancel_children" value="1" checked' in page
    assert "Also cancel its unfinished child workflows" in page
    resume = user("operator").get("/workflows/f0/fork/").content.decode()
    assert "cancel_children" not in resume


def test_cancel_with_children_ticked_stops_the_tree_and_is_audited(family) -> None:
    tree = family("f1")
    web = user("operator")
    response = web.post(
        "/workflows/f1/cancel/", {"cancel_children": ["0", "1"], "reason": "tree"}, follow=True
    )
    assert b"Cancel: cancelled, with its unfinished descendants" in response.content
    assert [status(w) for w in tree] == ["CANCELLED"] * 3
    record = AuditRecord.objects.get()
    assert record.action == "cancel" and record.filter == "cancel_children=1" and record.ok


def test_cancel_with_children_unticked_leaves_them_running(family) -> None:
    tree = family("f2")
    web = user("operator")
    response = web.post("/workflows/f2/cancel/", {"cancel_children": "0"}, follow=True)
    assert b"Cancel: cancelled<" in response.content or b"Cancel: cancelled\n" in response.content
    assert [status(w) for w in tree] == ["CANCELLED", "PENDING", "PENDING"]
    assert AuditRecord.objects.get().filter == ""


def test_a_bad_cancel_children_value_is_a_400_and_nothing_happens(family) -> None:
    family("f3")
    response = user("operator").post("/workflows/f3/cancel/", {"cancel_children": "yes"})
    assert response.status_code == 400
    assert b"cancel_children must be 0 or 1" in response.content
    assert status("f3") == "PENDING" and AuditRecord.objects.count() == 0


# -- attributes --------------------------------------------------------------------------------


@pytest.fixture
def tagged(make_engine, db):
    engine: Engine = make_engine("parity-attrs")

    @engine.workflow(name="tagged")
    def tagged_wf(ctx, n):
        ctx.set_attributes({"stage": "done"})
        return n

    engine.launch()
    site.point_engine_database(db)
    for wid, attrs in (
        ("a-str", {"customer": "42", "region": "eu", "city": "Zürich"}),
        ("a-int", {"customer": 42, "vip": True, "score": 1.5}),
        ("a-other", {"customer": "7", "vip": "true", "score": "1.5"}),
        ("a-none", None),
    ):
        engine.start_workflow(tagged_wf, 1, workflow_id=wid, attributes=attrs).get_result(
            timeout=30
        )
    yield engine
    connections["waymark"].close()


def listed(content: bytes) -> set[str]:
    text = content.decode()
    return {w for w in ("a-str", "a-int", "a-other", "a-none") if f"/workflows/{w}/" in text}


def test_the_list_filters_by_attribute(tagged) -> None:
    web = user("viewer")
    assert listed(web.get("/workflows/").content) == {"a-str", "a-int", "a-other", "a-none"}
    response = web.get("/workflows/?attr.customer=42")
    assert response.status_code == 200
    assert listed(response.content) == {"a-str", "a-int"}  # the string and the number
    page = response.content.decode()
    assert 'name="attr.customer" value="42"' in page  # kept in the filter form
    assert listed(web.get("/workflows/?attr.customer=42&attr.region=eu").content) == {"a-str"}
    assert listed(web.get("/workflows/?attr.stage=done&attr.customer=7").content) == {"a-other"}
    assert listed(web.get("/workflows/?attr.customer=nobody").content) == set()
    assert listed(web.get("/workflows/", {"attr.city": "Zürich"}).content) == {"a-str"}
    # A value that spells a boolean or a float matches it, and the string it is.
    assert listed(web.get("/workflows/?attr.vip=true").content) == {"a-int", "a-other"}
    assert listed(web.get("/workflows/?attr.score=1.5").content) == {"a-int", "a-other"}
    assert listed(web.get("/workflows/?attr.vip=1").content) == set()  # not True's number
    assert listed(web.get("/workflows/?attr.customer=%2242%22").content) == set()  # '"42"'


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("attr.=42", "is not an attribute filter"),
        ("attr.customer=1&attr.customer=2", "is given 2 times; give it once"),
        ("attr.customer=%00", "contains a NUL character"),
        ("attr.k=" + "x" * 1001, "longer than 1000 characters"),
    ],
)
def test_a_bad_attribute_filter_is_a_400_naming_it(tagged, query, message) -> None:
    response = user("viewer").get(f"/workflows/?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_the_header_shows_the_attributes_linked_to_the_list(tagged) -> None:
    web = user("viewer")
    page = web.get("/workflows/a-str/").content.decode()
    assert "<dt>Attributes</dt>" in page
    assert 'href="/workflows/?attr.customer=42"' in page and ">customer=42<" in page
    assert ">region=eu<" in page and ">stage=done<" in page
    bare = web.get("/workflows/a-none/").content.decode()  # only what its body set
    assert ">stage=done<" in bare and "customer=" not in bare


# -- queue control -----------------------------------------------------------------------------


@pytest.fixture
def queued(make_engine, db, monkeypatch):
    engine: Engine = make_engine("parity-queues")
    engine.queue("work", concurrency=4)

    @engine.workflow(name="noop")
    def noop(ctx):
        return 1

    engine.launch()
    site.point_engine_database(db)
    with connections["default"].cursor() as cur:
        for table in ("console_bulkjob", "console_audittarget", "console_auditrecord"):
            cur.execute(f"DELETE FROM {table}")
    client = Client(db.url, schema=db.schema)
    monkeypatch.setattr(actions, "client", lambda: client)
    yield engine
    client.close()
    connections["waymark"].close()


def work_queue(engine: Engine):
    return next(q for q in engine.list_queues() if q.name == "work")


def test_operators_pause_resume_and_change_limits_audited(queued) -> None:
    engine = queued
    web = user("operator")
    page = web.get("/queues/").content.decode()
    assert 'action="/queues/work/pause/"' in page and "Limits…" in page
    response = web.post("/queues/work/pause/", {"reason": "incident 12"}, follow=True)
    assert "Queue pause: queue work paused" in response.content.decode()
    assert work_queue(engine).paused
    page = web.get("/queues/").content.decode()
    assert ">Paused</span>" in page and 'action="/queues/work/resume/"' in page

    web.post("/queues/work/limits/", {"concurrency": "2", "rate_starts": "10", "rate_period": "60"})
    queue = work_queue(engine)
    assert (queue.concurrency, queue.worker_concurrency, queue.rate_limit) == (2, None, (10, 60.0))
    web.post("/queues/work/limits/", {"rate_starts": "none"})
    queue = work_queue(engine)
    assert (queue.concurrency, queue.rate_limit) == (2, None)  # only what was given changed
    assert "at most 2 at once" in web.get("/queues/").content.decode()
    web.post("/queues/work/resume/")
    assert not work_queue(engine).paused

    records = list(AuditRecord.objects.order_by("at", "id"))
    assert [r.action for r in records] == [
        "queue_pause", "queue_limits", "queue_limits", "queue_resume"
    ]  # fmt: skip
    pause = records[0]
    assert pause.ok and pause.reason == "incident 12" and pause.filter == "queue=work"
    assert pause.status_before == {"queue:work": "ACTIVE · at most 4 at once"}
    assert pause.status_after == {"queue:work": "PAUSED · at most 4 at once"}
    assert records[1].filter == "queue=work&concurrency=2&rate_limit=%2810%2C+60.0%29"
    assert records[2].status_after == {"queue:work": "PAUSED · at most 2 at once"}


def test_queue_control_refuses_bad_input_and_viewers(queued) -> None:
    engine = queued
    web = user("operator")
    for form, message in (
        ({"concurrency": "-1"}, "concurrency='-1' is not a number from 1"),
        ({"concurrency": "0"}, "is not a number from 1"),
        ({"rate_starts": "5", "rate_period": "soon"}, "rate_period='soon' is not a period"),
        ({}, "give at least one limit"),
    ):
        response = web.post("/queues/work/limits/", form)
        assert response.status_code == 400 and message in html.unescape(response.content.decode())
    assert AuditRecord.objects.count() == 0  # nothing done, nothing recorded
    unknown = web.post("/queues/nope/pause/", follow=True).content.decode()
    assert "unknown queue &#x27;nope&#x27;; declare it with engine.queue()" in unknown
    record = AuditRecord.objects.get()
    assert record.ok is False and record.status_after == {"queue:nope": "NOT FOUND"}
    assert web.post("/queues/work/explode/").status_code == 404

    viewer = user("viewer")
    assert viewer.post("/queues/work/pause/").status_code == 403
    assert 'action="/queues/work/pause/"' not in viewer.get("/queues/").content.decode()
    assert not work_queue(engine).paused and work_queue(engine).concurrency == 4


# -- streams -----------------------------------------------------------------------------------


@pytest.fixture
def streaming(make_engine, db):
    engine: Engine = make_engine("parity-streams")
    gate = threading.Event()

    @engine.workflow(name="streamer")
    def streamer(ctx):
        ctx.write_stream("progress", {"pct": 10})
        ctx.write_stream("progress", "<b>half</b>")
        ctx.write_stream("log", "started")
        ctx.close_stream("log")
        ctx.run_step(lambda: gate.wait(60))
        ctx.write_stream("progress", 100)
        return "ok"

    engine.launch()
    site.point_engine_database(db)
    engine.start_workflow(streamer, workflow_id="st1")
    wait_until(lambda: len(list(engine.read_stream("st1", "log"))) == 1, what="log closed")
    yield engine, gate
    gate.set()
    connections["waymark"].close()


def test_the_header_lists_streams_and_a_stream_page_follows_an_open_one(streaming) -> None:
    engine, gate = streaming
    web = user("viewer")
    header = web.get("/workflows/st1/").content.decode()
    assert "<dt>Streams</dt>" in header
    assert 'href="/workflows/st1/stream/?key=log">log (1, closed)</a>' in header
    assert 'href="/workflows/st1/stream/?key=progress">progress (2, open)</a>' in header
    assert "Event history" not in header  # the engine keeps each key's latest value only

    page = web.get("/workflows/st1/stream/?key=progress").content.decode()
    assert "Open: new values appear as the workflow writes them." in page
    assert "<pre>{&quot;pct&quot;:10}</pre>" in page.replace(" ", "")
    assert "&lt;b&gt;half&lt;/b&gt;" in page and "<b>half</b>" not in page
    assert 'hx-get="/workflows/st1/stream/?key=progress&amp;from=2"' in page
    assert 'hx-trigger="every 2s"' in page

    nothing = web.get("/workflows/st1/stream/?key=progress&from=2", HTTP_HX_REQUEST="true")
    assert "<pre>" not in nothing.content.decode()  # nothing new yet: polls again from 2
    assert "from=2" in nothing.content.decode()
    gate.set()
    engine.retrieve_workflow("st1").get_result(timeout=30)
    more = web.get("/workflows/st1/stream/?key=progress&from=2", HTTP_HX_REQUEST="true")
    text = more.content.decode()
    assert '<li value="2"><pre>100</pre></li>' in text and "hx-get" not in text  # final: stop

    closed = web.get("/workflows/st1/stream/?key=log").content.decode()
    assert "Closed: every value is below." in closed and "hx-get" not in closed


def test_a_bad_stream_request_is_refused(streaming) -> None:
    web = user("viewer")
    assert web.get("/workflows/st1/stream/").status_code == 400
    assert b"key is missing" in web.get("/workflows/st1/stream/").content
    assert web.get("/workflows/st1/stream/?key=progress&from=-1").status_code == 400
    assert web.get("/workflows/nope/stream/?key=x").status_code == 404
