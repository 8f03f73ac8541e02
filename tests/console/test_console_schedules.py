"""The schedules page with managed schedules: what it shows (time zone, paused, next and last
fire, ``?tz=``), who may act (viewer: nobody; operator: pause, resume, trigger, backfill;
admin: delete too), CSRF, and the audit rows each action leaves."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import zoneinfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client as WebClient

import tests.console.console_site as site
from console import actions
from console.models import AuditRecord, AuditTarget
from engine import Client, Engine
from tests.console.test_console_content import text_of
from tests.console.test_console_operate import user

SCRIPT = "<script>alert('sched')</script>"


@pytest.fixture
def scheduled(make_engine, db, monkeypatch):
    engine: Engine = make_engine("schedules-app")

    @engine.workflow(name="report")
    def report(ctx, tick):
        return tick.isoformat()

    @engine.workflow(name="coded", schedule="0 0 1 1 *")
    def coded(ctx, tick):
        return tick.isoformat()

    engine.launch()
    engine.create_schedule("nightly", "report", "30 2 * * *", timezone="Europe/Paris")
    engine.create_schedule("held", "report", "0 * * * *")
    engine.pause_schedule("held")
    site.point_engine_database(db)
    with connections["default"].cursor() as cur:
        for table in ("console_bulkjob", "console_audittarget", "console_auditrecord"):
            cur.execute(f"DELETE FROM {table}")
    client = Client(db.url, schema=db.schema)
    monkeypatch.setattr(actions, "client", lambda: client)
    yield engine
    client.close()
    connections["waymark"].close()


def managed(engine: Engine, name: str):
    return next((s for s in engine.list_schedules() if s.name == name), None)


def test_the_page_lists_managed_schedules_with_zone_pause_and_fire_times(scheduled) -> None:
    engine = scheduled
    page = user("viewer").get("/schedules/")
    shown = {s.name: s for s in page.context["schedules"]}
    assert sorted(shown) == ["coded", "held", "nightly"]  # the decorator's is managed too
    nightly = shown["nightly"]
    assert nightly.managed and nightly.timezone == "Europe/Paris" and not nightly.paused
    assert nightly.workflow_name == "report"
    assert nightly.next_fire_at == managed(engine, "nightly").next_fire_at
    # The next ticks are the zone's: 02:30 on Paris' wall clock.
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    assert {(t.astimezone(paris).hour, t.astimezone(paris).minute) for t in nightly.next_ticks} == {
        (2, 30)
    }
    assert shown["held"].paused and shown["held"].next_ticks == []
    text = text_of(page)
    assert "nightly 30 2 * * * Europe/Paris" in text
    assert "held 0 * * * * UTC Paused" in text
    next_utc = nightly.next_fire_at.strftime("%Y-%m-%d %H:%M:%S")
    assert f"Next fire: {next_utc} · Last fire: never (UTC)" in text
    # A viewer sees no control.
    assert "/schedules/nightly/pause/" not in page.content.decode()


def test_times_are_shown_in_the_zone_asked_for(scheduled) -> None:
    engine = scheduled
    web = user("viewer")
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    nxt = managed(engine, "nightly").next_fire_at.astimezone(tokyo)
    text = text_of(web.get("/schedules/", {"tz": "Asia/Tokyo"}))
    assert f"Next fire: {nxt.strftime('%Y-%m-%d %H:%M:%S')} · Last fire: never (Asia/Tokyo)" in text
    bad = web.get("/schedules/", {"tz": "Mars/Base"})
    assert bad.status_code == 400
    assert "unknown time zone &#x27;Mars/Base&#x27;" in bad.content.decode()
    assert "IANA" in bad.content.decode()


def test_controls_by_role(scheduled) -> None:
    operator = user("operator").get("/schedules/").content.decode()
    for action in ("pause", "trigger", "backfill"):
        assert f'action="/schedules/nightly/{action}/"' in operator
    assert 'action="/schedules/held/resume/"' in operator
    assert "/schedules/nightly/delete/" not in operator
    admin = user("admin").get("/schedules/").content.decode()
    assert 'action="/schedules/nightly/delete/"' in admin


def test_a_viewer_cannot_act_and_an_operator_cannot_delete(scheduled) -> None:
    engine = scheduled
    viewer = user("viewer")
    for action in ("pause", "resume", "trigger", "backfill", "delete"):
        assert viewer.post(f"/schedules/nightly/{action}/").status_code == 403
    assert user("operator").post("/schedules/nightly/delete/").status_code == 403
    assert not managed(engine, "nightly").paused and managed(engine, "nightly") is not None
    assert engine.list_workflows(workflow_id_prefix="nightly@") == []
    assert AuditRecord.objects.count() == 0
    # GET never acts; a POST without the CSRF token is refused.
    assert user("operator").get("/schedules/nightly/pause/").status_code == 405
    strict = WebClient(enforce_csrf_checks=True)
    strict.force_login(user("operator").get("/").wsgi_request.user)
    assert strict.post("/schedules/nightly/pause/").status_code == 403
    assert not managed(engine, "nightly").paused


def test_operators_pause_resume_trigger_backfill_audited(scheduled) -> None:
    engine = scheduled
    web = user("operator")
    done = web.post("/schedules/nightly/pause/", {"reason": "incident 7"}, follow=True)
    assert "Schedule pause: schedule nightly paused" in text_of(done)
    assert managed(engine, "nightly").paused
    web.post("/schedules/nightly/resume/")
    assert not managed(engine, "nightly").paused

    triggered = web.post("/schedules/nightly/trigger/", follow=True)
    (run,) = engine.list_workflows(workflow_id_prefix="nightly@trigger-")
    assert f"triggered: {run.workflow_id}" in html.unescape(text_of(triggered))
    assert engine.retrieve_workflow(run.workflow_id).get_result(timeout=30)

    # Read in the page's zone: 2026-03-01 00:00 to 03-03 00:00 in Paris holds two 02:30 ticks.
    form = {"start": "2026-03-01T00:00", "end": "2026-03-03T00:00", "tz": "Europe/Paris"}
    filled = web.post("/schedules/nightly/backfill/", form)
    assert filled["Location"] == "/schedules/?tz=Europe%2FParis"
    ticks = sorted(w.workflow_id for w in engine.list_workflows(workflow_id_prefix="nightly@2"))
    assert ticks == ["nightly@2026-03-01T01:30:00+00:00", "nightly@2026-03-02T01:30:00+00:00"]
    web.post("/schedules/nightly/backfill/", form)  # again: the ticks that ran do not run twice
    assert len(engine.list_workflows(workflow_id_prefix="nightly@2")) == 2

    records = list(AuditRecord.objects.order_by("at", "id"))
    assert [r.action for r in records] == [
        "schedule_pause",
        "schedule_resume",
        "schedule_trigger",
        "schedule_backfill",
        "schedule_backfill",
    ]
    pause = records[0]
    assert pause.ok and pause.actor == "operator-user" and pause.reason == "incident 7"
    assert pause.filter == "schedule=nightly"
    assert pause.status_before["schedule:nightly"].startswith("ACTIVE · 30 2 * * * (Europe/Paris)")
    assert pause.status_after == {"schedule:nightly": "PAUSED · 30 2 * * * (Europe/Paris)"}
    assert list(
        AuditTarget.objects.filter(record=records[2]).values_list("workflow_id", flat=True)
    ) == [run.workflow_id]
    assert records[3].filter == (
        "schedule=nightly&start=2026-03-01T00%3A00%3A00%2B01%3A00"
        "&end=2026-03-03T00%3A00%3A00%2B01%3A00"
    )
    assert "2 ticks" in records[3].outcome and "2 ticks" in records[4].outcome


def test_admins_delete_audited(scheduled) -> None:
    engine = scheduled
    response = user("admin").post("/schedules/held/delete/", {"reason": "retired"}, follow=True)
    assert "schedule held deleted" in text_of(response)
    assert managed(engine, "held") is None
    record = AuditRecord.objects.get()
    assert (record.action, record.ok, record.reason) == ("schedule_delete", True, "retired")
    assert record.status_before == {"schedule:held": "PAUSED · 0 * * * * (UTC)"}
    assert record.status_after == {"schedule:held": "NOT FOUND"}
    assert "held" not in {s.name for s in user("viewer").get("/schedules/").context["schedules"]}


def test_bad_input_is_a_400_or_a_failed_audited_outcome(scheduled) -> None:
    engine = scheduled
    web = user("operator")
    for form, message in (
        ({"start": "yesterday", "end": "2026-03-03T00:00"}, "start='yesterday' is not a date"),
        ({"start": "2026-03-01T00:00", "end": ""}, "end='' is not a date"),
        ({"start": "2026-03-01T00:00", "end": "2026-03-02T00:00", "tz": "Nowhere"}, "Nowhere"),
    ):
        response = web.post("/schedules/nightly/backfill/", form)
        assert response.status_code == 400 and message in html.unescape(response.content.decode())
    assert AuditRecord.objects.count() == 0  # nothing done, nothing recorded
    backwards = {"start": "2026-03-03T00:00", "end": "2026-03-01T00:00"}
    text = html.unescape(text_of(web.post("/schedules/nightly/backfill/", backwards, follow=True)))
    assert "is not after start" in text
    unknown = html.unescape(text_of(web.post("/schedules/ghost/pause/", follow=True)))
    assert "unknown schedule 'ghost'" in unknown
    failed = list(AuditRecord.objects.order_by("at", "id"))
    assert [(r.action, r.ok) for r in failed] == [
        ("schedule_backfill", False),
        ("schedule_pause", False),
    ]
    assert failed[1].status_after == {"schedule:ghost": "NOT FOUND"}
    assert engine.list_workflows(workflow_id_prefix="nightly@") == []
    assert web.post("/schedules/nightly/explode/").status_code == 404


def test_names_and_workflows_are_escaped(scheduled) -> None:
    engine = scheduled
    engine.create_schedule(SCRIPT, "report", "0 0 1 1 *")
    body = user("operator").get("/schedules/").content.decode()
    assert SCRIPT not in body
    assert "&lt;script&gt;alert(&#x27;sched&#x27;)&lt;/script&gt;" in body


def test_the_lag_gauge_and_metrics_read_managed_schedules(scheduled, db) -> None:
    from console import gauges

    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    lags = gauges.schedule_lag([], now_ms)
    assert lags["nightly"] == 0.0 and "held" not in lags  # on time; a paused one is not late
    # A schedule of a workflow no worker here runs, ten minutes past its tick: late.
    db.raw(
        "INSERT INTO schedules (name, workflow_name, cron, timezone, paused, next_fire_at, "
        "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        ("orphan", "elsewhere", "* * * * *", "UTC", False, now_ms - 600_000, now_ms, now_ms),
    )
    assert gauges.schedule_lag([], now_ms)["orphan"] == pytest.approx(600.0)
    assert gauges.read(now_ms).schedule_lag["orphan"] == pytest.approx(600.0)
    metrics = user("admin").get("/metrics").content.decode()
    assert 'waymark_schedule_lag_seconds{schedule="orphan"}' in metrics


def cli(*words: str) -> dict:
    out = io.StringIO()
    call_command("schedules", *words, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_the_cli_lists_creates_and_acts_audited(scheduled) -> None:
    engine = scheduled
    assert cli("create", "cli-s", "report", "0 4 * * *", "--timezone", "Asia/Tokyo")["ok"]
    listed = {s["name"]: s for s in cli("list")}
    assert listed["cli-s"]["timezone"] == "Asia/Tokyo" and listed["cli-s"]["workflow_name"] == (
        "report"
    )
    assert listed["held"]["paused"] and listed["held"]["next_fire_at"] is None
    assert cli("pause", "cli-s", "--reason", "maintenance")["ok"]
    assert managed(engine, "cli-s").paused
    assert cli("resume", "cli-s")["ok"] and not managed(engine, "cli-s").paused
    triggered = cli("trigger", "cli-s")
    assert engine.retrieve_workflow(triggered["new_workflow_id"]).get_result(timeout=30)
    filled = cli("backfill", "cli-s", "--start", "2026-01-01T00:00", "--end", "2026-01-03T00:00",
                 "--tz", "Asia/Tokyo")  # fmt: skip
    assert "2 ticks" in filled["message"]
    assert sorted(w.workflow_id for w in engine.list_workflows(workflow_id_prefix="cli-s@2")) == [
        "cli-s@2025-12-31T19:00:00+00:00",
        "cli-s@2026-01-01T19:00:00+00:00",
    ]
    assert cli("delete", "cli-s")["ok"] and managed(engine, "cli-s") is None
    records = list(AuditRecord.objects.order_by("at", "id"))
    assert [r.action for r in records] == [
        "schedule_create",
        "schedule_pause",
        "schedule_resume",
        "schedule_trigger",
        "schedule_backfill",
        "schedule_delete",
    ]
    assert {r.source for r in records} == {"cli"} and all(r.ok for r in records)
    assert (
        records[0].filter
        == "schedule=cli-s&workflow=report&cron=0+4+%2A+%2A+%2A&timezone=Asia%2FTokyo"
    )
    assert records[1].reason == "maintenance"


def test_the_cli_refuses_bad_input_naming_the_fix(scheduled) -> None:
    engine = scheduled
    with pytest.raises(CommandError) as bad_cron:
        cli("create", "x", "report", "every day")
    assert "5 fields" in str(bad_cron.value) and "6 with seconds first" in str(bad_cron.value)
    with pytest.raises(CommandError, match="unknown time zone 'Moon/Base'"):
        cli("create", "x", "report", "0 * * * *", "--timezone", "Moon/Base")
    with pytest.raises(CommandError, match="unknown workflow 'ghost'"):
        cli("create", "x", "ghost", "0 * * * *")
    with pytest.raises(CommandError, match="not a date and time"):
        cli("backfill", "nightly", "--start", "soon", "--end", "2026-01-01T00:00")
    with pytest.raises(CommandError, match="unknown schedule 'x'"):
        cli("trigger", "x")
    assert managed(engine, "x") is None
    assert sorted(s.name for s in engine.list_schedules()) == ["coded", "held", "nightly"]
