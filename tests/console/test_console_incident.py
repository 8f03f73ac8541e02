"""The console during an incident (issue 12): what each unfinished workflow is doing now, one
consistent live detail view, the timeline's sleeps and breaks, forks linked both ways, the
list's new columns and pages. Django's test client, on SQLite and on Postgres."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connections
from django.urls import resolve, reverse

import tests.console.console_site as site
from console import actions, bulk, now
from console.models import Workflow
from engine import Client
from tests.console.test_console_content import text_of
from tests.console.test_console_operate import app, start_blocked, user  # noqa: F401
from tests.support import CLOCK, wait_until


def detail(workflow_id: str, rest: str = "") -> str:
    """A workflow's URL as the console links it (IDs are one percent-encoded segment)."""
    return reverse("workflow_detail", args=[workflow_id]) + rest


def status(workflow_id: str) -> str:
    return Workflow.objects.get(workflow_uuid=workflow_id).status


def last_step(workflow_id: str, name: str) -> None:
    from console.models import Step

    wait_until(
        lambda: (
            Step.objects.filter(workflow_uuid=workflow_id)
            .order_by("-function_id")
            .values_list("function_name", flat=True)
            .first()
            == name
        ),
        what=f"{workflow_id} to record {name}",
    )


@pytest.fixture
def busy(make_engine, db, monkeypatch):
    """Unfinished workflows of every kind: sleeping, waiting for a message, for an event, for
    a child, queued behind others, delayed, stranded on a version nobody runs."""
    engine = make_engine("incident-app", application_version="v-live")
    release = threading.Event()

    @engine.step(name="prep")
    def prep():
        return "ready"

    @engine.workflow(name="shop.napper")
    def napper(ctx, hours):
        prep()
        ctx.sleep(hours * 3600)
        return "rested"

    @engine.workflow(name="shop.listener")
    def listener(ctx, x):
        return ctx.recv(topic="go", timeout=600)

    @engine.workflow(name="shop.watcher")
    def watcher(ctx, x):
        return ctx.get_event("nobody", "k", timeout=600)

    @engine.workflow(name="shop.child")
    def child(ctx, x):
        ctx.run_step(lambda: release.wait(30))
        return x

    @engine.workflow(name="shop.parent")
    def parent(ctx, x):
        handle = ctx.start_workflow(child, x)
        return handle.get_result()

    engine.queue("serial", concurrency=1, worker_concurrency=1)
    engine.launch()
    engine.start_workflow(napper, 1, workflow_id="nap/1")
    engine.start_workflow(watcher, 0, workflow_id="watch-1")
    engine.start_workflow(parent, 0, workflow_id="parent-1")
    engine.start_workflow(listener, 0, queue="serial", workflow_id="listen-1")
    wait_until(lambda: status_of(engine, "listen-1") == "PENDING", what="listen-1 to start")
    engine.start_workflow(listener, 1, queue="serial", workflow_id="queued-1")
    engine.start_workflow(listener, 2, queue="serial", workflow_id="queued-2")
    engine.start_workflow(listener, 3, queue="serial", workflow_id="later-1", delay=3600)
    client = Client(db.url, schema=db.schema)
    client.start_workflow("shop.listener", 0, workflow_id="gone-1", application_version="v-gone")
    site.point_engine_database(db)
    for workflow_id, name in (
        ("nap/1", "waymark.sleep"),
        ("listen-1", "waymark.recv.timeout"),
        ("watch-1", "waymark.get_event.timeout"),
        ("parent-1", "shop.child"),
    ):
        last_step(workflow_id, name)
    for workflow_id in ("nap/1", "listen-1", "watch-1", "parent-1"):
        wait_until(
            lambda wid=workflow_id: Workflow.objects.get(workflow_uuid=wid).waiting is not None,
            what=f"{workflow_id} to record its wait",
        )
    monkeypatch.setattr(actions, "client", lambda: client)
    yield engine
    release.set()
    client.close()
    connections["waymark"].close()


def status_of(engine, workflow_id: str) -> str | None:
    found = engine.get_workflow_status(workflow_id)
    return found.status if found else None


def now_line(workflow_id: str) -> str:
    """The "now" line of a workflow's page, as text."""
    page = user("viewer").get(detail(workflow_id))
    assert page.status_code == 200
    match = re.search(r'<p class="now[^"]*" id="now">(.*?)</p>', page.content.decode(), re.S)
    assert match, workflow_id
    return " ".join(re.sub(r"<[^>]+>", " ", match[1]).split())


def test_now_says_what_every_unfinished_workflow_is_doing(busy) -> None:
    web = user("viewer")
    assert re.search(rf"sleeping until {CLOCK} \(in [\d.]+ (min|h)\)", now_line("nap/1"))
    assert "on local" in now_line("nap/1")
    listen = now_line("listen-1")
    assert "waiting for a message on topic “go” since" in listen and "timeout at" in listen
    assert re.search(rf"timeout at {CLOCK} \(in [\d.]+ min\)", listen)
    watch = now_line("watch-1")
    assert "waiting for an event: key “k” of workflow nobody since" in watch
    parent = now_line("parent-1")
    assert "waiting for child workflow parent-1-1 (step 2) since" in parent
    assert "open the child" in parent
    assert "queued on queue serial: 0 ahead of it (limits: at most 1 at once · 1 per worker)" in (
        now_line("queued-1")
    )
    assert "1 ahead of it" in now_line("queued-2")
    assert re.search(rf"delayed until {CLOCK} \(in [\d.]+ (min|h)\)", now_line("later-1"))
    assert "stranded: no live executor runs version v-gone" in now_line("gone-1")

    # The list has the short form as a column; finished workflows have none.
    listing = text_of(web.get("/workflows/"))
    for short in (
        "sleeping until",
        "waiting for a message",
        "waiting for an event",
        "waiting for a child",
        "queued, 0 ahead",
        "queued, 1 ahead",
        "delayed until",
        "stranded (no executor for its version)",
    ):
        assert short in listing, short


def test_two_enqueued_in_one_millisecond_are_ordered_by_id(busy, db) -> None:
    # Both enqueued in one millisecond (the test above could meet this by chance): the order
    # is still total, so exactly one of them is ahead of the other.
    db.raw(
        "UPDATE workflow_status SET created_at = %s WHERE workflow_uuid IN ('queued-1', "
        "'queued-2')",
        (Workflow.objects.get(workflow_uuid="queued-1").created_at,),
    )
    assert "0 ahead of it" in now_line("queued-1")
    assert "1 ahead of it" in now_line("queued-2")


def test_the_now_line_falls_back_to_the_steps_without_a_current_recorded_wait(busy, db) -> None:
    web = user("viewer")

    def now_text(workflow_id: str) -> str:
        return " ".join(
            re.sub(r"<[^>]+>", " ", web.get(detail(workflow_id)).content.decode()).split()
        )

    db.raw("UPDATE workflow_status SET waiting = 'not json' WHERE workflow_uuid = 'listen-1'")
    listen = now_text("listen-1")
    assert "waiting for a message since" in listen and "topic" not in listen
    # A record whose ending step is already recorded is stale: the steps tell the truth.
    stale = '{"kind":"message","step":1,"since":1,"until":null,"topic":"old","key":null}'
    db.raw("UPDATE workflow_status SET waiting = %s WHERE workflow_uuid = 'watch-1'", (stale,))
    watch = now_text("watch-1")
    assert "old" not in watch and "waiting for an event since" in watch


def test_the_queues_page_counts_sleeping_and_waiting_apart_from_running(busy) -> None:
    page = user("viewer").get("/queues/")
    (serial,) = [q for q in page.context["queues"] if q.name == "serial"]
    assert (serial.enqueued, serial.running, serial.waiting, serial.delayed) == (2, 0, 1, 1)
    names = [q.name for q in page.context["queues"]]
    assert "_waymark" not in names and bulk.QUEUE not in names
    assert "_waymark" in [
        q.name for q in user("viewer").get("/queues/?internal=1").context["queues"]
    ]
    assert user("viewer").get("/queues/?internal=yes").status_code == 400


def test_the_internal_queue_is_never_shown_as_a_workflows_queue(busy, db) -> None:
    db.raw("UPDATE workflow_status SET queue_name = '_waymark' WHERE workflow_uuid = 'watch-1'")
    web = user("viewer")
    assert "_waymark" not in web.get("/workflows/").content.decode()
    header = web.get("/workflows/watch-1/").content.decode()
    assert "_waymark" not in header
    assert now.shown_queue("_waymark") == "" and now.shown_queue("serial") == "serial"


def test_a_sleep_is_drawn_to_its_wake_up_time_and_breaks_never_cover_a_working_step(busy) -> None:
    page = user("viewer").get(detail("nap/1"))
    timeline = page.context["timeline"]
    sleep = next(b for b in timeline.bars if b.kind == "sleep")
    prep = next(b for b in timeline.bars if b.name == "prep")
    assert sleep.tick == pytest.approx(100.0, abs=0.01)  # the wake-up is the timeline's end
    assert sleep.left + sleep.width == pytest.approx(100.0, abs=0.01)
    assert re.fullmatch(rf"wakes {CLOCK}", sleep.wake_label)
    assert timeline.end_ms - timeline.start_ms >= 3_599_000  # an hour, not "until now"
    assert len(timeline.breaks) == 1
    (gap,) = timeline.breaks
    assert gap.left >= prep.left + prep.width  # after the work, never over it
    assert timeline.now is not None and timeline.now <= gap.left
    body = text_of(page)
    assert sleep.wake_label in body and "idle," in body and "Compressed" in body
    step_page = text_of(user("viewer").get(detail("nap/1", "steps/2/")))
    assert re.search(rf"wakes at {CLOCK}", step_page)
    assert re.search(r"Started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ UTC", step_page)


def test_the_detail_page_is_one_live_view_consistent_after_an_action(app) -> None:
    engine, gate = app
    start_blocked(engine, gate, "live/1")
    web = user("operator")
    page = web.get(detail("live/1"))
    fingerprint = page.context["fingerprint"]
    body = page.content.decode()
    assert 'id="live"' in body and "Cancel…" in body and "Resume…" not in body
    live = body[body.index('<div id="live"') :]
    for part in ('id="workflow-header"', 'id="timeline"', 'id="steps"', 'id="audit"'):
        assert part in live, part  # all inside the one polled fragment
    poll = detail("live/1", f"?fragment=live&v={fingerprint}")
    assert web.get(poll, HTTP_HX_REQUEST="true").status_code == 204  # nothing changed
    web.post(detail("live/1", "cancel/"), {"reason": "incident 12"})
    after = web.get(poll, HTTP_HX_REQUEST="true")
    fragment = after.content.decode()
    assert after.status_code == 286  # changed, and final: swap it in and stop polling
    assert "CANCELLED" in fragment and "Cancel…" not in fragment and "Resume…" in fragment
    assert "incident 12" in fragment  # the audit strip refreshed with it
    assert "hx-trigger" not in fragment.split(">", 1)[0]  # no further polling
    new = after.context["fingerprint"]
    again = web.get(detail("live/1", f"?fragment=live&v={new}"), HTTP_HX_REQUEST="true")
    assert again.status_code == 286 and again.content == b""
    gate.set()


def test_forks_are_linked_both_ways_with_copied_steps_and_audit_on_both(app) -> None:
    engine, _ = app
    engine.start_workflow("held", 3, workflow_id="src/1").get_result(timeout=20)
    web = user("operator")
    forked = web.post(detail("src/1", "fork/"), {"step": "2", "reason": "replay step 2"})
    fork_id = resolve(forked["Location"]).kwargs["workflow_id"]
    wait_until(lambda: status(fork_id) == "SUCCESS", what="the fork to finish")
    fork_page = web.get(forked["Location"])
    assert fork_page.context["copied"] == {1}  # step 1 copied, step 2 run again by the fork
    body = fork_page.content.decode()
    assert body.count('class="copied"') == 1 and "1 copied from" in text_of(fork_page)
    assert f'class="mono fork-source" href="{detail("src/1")}"' in body
    assert "replay step 2" in body  # the fork's audit record, on the fork's page
    source = web.get(detail("src/1"))
    assert [f.workflow_uuid for f in source.context["forks"]] == [fork_id]
    assert f'class="mono fork-link" href="{detail(fork_id)}"' in source.content.decode()
    assert "replay step 2" in source.content.decode()
    assert source.context["copied"] == set()


def test_the_list_has_duration_ended_previous_page_prefix_names_and_fixed_copy(app) -> None:
    engine, _ = app
    for i in range(55):
        engine.start_workflow("held", i, workflow_id=f"page-{i:03d}")
    for i in range(55):
        wait_until(lambda i=i: status(f"page-{i:03d}") == "SUCCESS")
    web = user("operator")
    first = web.get("/workflows/?id=page-")
    assert "Ended" in text_of(first) and "Duration" in text_of(first)
    assert "?&" not in first.content.decode()
    assert first.context["prev_url"] == "" and first.context["next_url"]
    second = web.get(first.context["next_url"])
    assert len(second.context["rows"]) == 5 and second.context["prev_url"]
    assert "Previous page" in text_of(second)
    back = web.get(second.context["prev_url"])
    ids = [w.workflow_uuid for w in back.context["rows"]]
    assert ids == [w.workflow_uuid for w in first.context["rows"]]
    unfiltered = web.get("/workflows/")
    assert "?&" not in unfiltered.content.decode()
    assert [w.workflow_uuid for w in web.get("/workflows/?name=hel").context["rows"]][:1]
    assert web.get("/workflows/?name=held&id=page-").context["count"] == 55
    assert web.get("/workflows/?name=helx").context["count"] == 0
    assert 'placeholder="e.g. held"' in first.content.decode()
    row = text_of(web.get("/workflows/?id=page-000"))
    assert re.search(
        r"SUCCESS page-000 held \S+ local (now|.+ ago) (now|.+ ago) \d+(\.\d+)? (ms|s)$", row
    )
    engine.start_workflow("held", 1, workflow_id="done-x").get_result(timeout=20)
    confirm = text_of(web.get("/workflows/done-x/resume/"))
    assert "cannot be resumed" in confirm and "resumeed" not in confirm
    start_blocked(engine, app[1], "run-x")
    cancel = web.get("/workflows/run-x/cancel/").content.decode()
    assert ">Cancel workflow</button>" in cancel
    app[1].set()
