"""Data lifecycle in the console: delete (admins), export download, CLI delete/export/import/gc
(all audited), the retention policy and its page, and the trace link."""

from __future__ import annotations

import json

from django.core.management import call_command
from django.test import override_settings

from console import retention
from console.models import AuditRecord, RetentionRun, Workflow
from tests.console.test_console_operate import app, start_blocked, user, wait_for  # noqa: F401


def finished(engine, workflow_id: str) -> None:
    engine.start_workflow("held", 1, workflow_id=workflow_id).get_result(timeout=30)


def test_only_admins_delete_and_only_finished_workflows(app) -> None:
    engine, gate = app
    finished(engine, "del-1")
    operator, admin = user("operator"), user("admin")
    page = operator.get("/workflows/del-1/").content
    assert b"Delete\xe2\x80\xa6" not in page and b"Export JSON" in page
    assert operator.get("/workflows/del-1/delete/").status_code == 403
    assert operator.post("/workflows/del-1/delete/", {"reason": "x"}).status_code == 403
    assert Workflow.objects.filter(workflow_uuid="del-1").exists()
    assert b"Delete\xe2\x80\xa6" in admin.get("/workflows/del-1/").content
    start_blocked(engine, gate, "del-2")
    response = admin.post("/workflows/del-2/delete/", {"reason": "no"})
    assert response.status_code == 302 and Workflow.objects.filter(workflow_uuid="del-2").exists()
    response = admin.post("/workflows/del-1/delete/", {"reason": "cleanup"})
    assert response.status_code == 302 and response["Location"] == "/workflows/"
    assert not Workflow.objects.filter(workflow_uuid="del-1").exists()
    records = list(AuditRecord.objects.filter(action="delete").order_by("at", "id"))
    assert [(r.workflow_ids, r.ok) for r in records] == [(["del-2"], False), (["del-1"], True)]
    assert records[1].status_before == {"del-1": "SUCCESS"}
    assert records[1].status_after == {"del-1": "NOT FOUND"}
    gate.set()


def test_export_is_a_json_download_and_audited(app) -> None:
    engine, _ = app
    finished(engine, "exp-1")
    response = user("operator").get("/workflows/exp-1/export.json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="workflow-exp-1.json"'
    data = json.loads(response.content)
    assert data["workflows"][0]["workflow"]["workflow_uuid"] == "exp-1"
    (record,) = AuditRecord.objects.filter(action="export")
    assert record.workflow_ids == ["exp-1"] and record.ok is True
    assert user("viewer").get("/workflows/exp-1/export.json").status_code == 403


def test_cli_export_delete_import_gc(app, db, capsys, tmp_path) -> None:
    engine, _ = app
    finished(engine, "cli-x")
    out = tmp_path / "x.json"
    call_command("workflows", "export", "cli-x", "--output", str(out))
    call_command("workflows", "delete", "cli-x", "--json")
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert not Workflow.objects.filter(workflow_uuid="cli-x").exists()
    call_command("workflows", "import", str(out), "--json")
    assert json.loads(capsys.readouterr().out)["message"] == "imported cli-x"
    assert Workflow.objects.get(workflow_uuid="cli-x").status == "SUCCESS"
    db.raw("UPDATE workflow_status SET completed_at = 1 WHERE workflow_uuid = 'cli-x'")
    call_command("workflows", "gc", "--older-than", "60", "--json")
    assert json.loads(capsys.readouterr().out)["message"] == "deleted 1 finished workflow(s)"
    actions = [r.action for r in AuditRecord.objects.order_by("at", "id")]
    assert actions == ["export", "delete", "import", "gc"]


def test_retention_applies_overrides_and_records_the_pass(app, db) -> None:
    engine, gate = app
    RetentionRun.objects.all().delete()  # the console's database outlives one test
    for i in range(4):
        finished(engine, f"old-{i}")
    db.raw("UPDATE workflow_status SET completed_at = 1 WHERE workflow_uuid LIKE 'old-%%'")
    start_blocked(engine, gate, "live")
    overrides = json.dumps({"held": {"max": 1}, "other": {"days": 1}})
    with override_settings(WAYMARK_RETENTION_DAYS="30", WAYMARK_RETENTION_OVERRIDES=overrides):
        rules = retention.policy()
        assert rules.overrides["held"].max == 1 and rules.default.days == 30
        run = retention.run_once(engine.lifecycle, "w1")
        assert run.deleted == 3 and run.by_name == {"held": 3, "other": 0, "*": 0}
        assert Workflow.objects.filter(workflow_uuid="live").exists()  # unfinished: kept
        page = user("viewer").get("/retention/").content.decode()
        assert "at most 1" in page and "30 days" in page and "w1" in page
    assert RetentionRun.objects.count() == 1
    with override_settings(WAYMARK_RETENTION_OVERRIDES="{nope"):
        assert "invalid" in user("viewer").get("/retention/").content.decode()
    gate.set()


def test_trace_link_when_configured(app, db) -> None:
    engine, _ = app
    finished(engine, "tr-1")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    db.raw(
        "UPDATE workflow_status SET traceparent = %s WHERE workflow_uuid = 'tr-1'",
        (f"00-{trace_id}-00f067aa0ba902b7-01",),
    )
    viewer = user("viewer")
    assert b"open the trace" not in viewer.get("/workflows/tr-1/").content
    with override_settings(WAYMARK_TRACE_URL="https://traces.example/t/{trace_id}"):
        page = viewer.get("/workflows/tr-1/").content.decode()
    assert f'href="https://traces.example/t/{trace_id}"' in page
    wait_for("tr-1", "SUCCESS")
