"""Operating from the console: roles x actions, confirmations, CSRF, bulk, audit, CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connections
from django.test import Client as WebClient

import tests.console.console_site as site
from console import actions, bulk
from console.models import AuditRecord, ReadOnlyError, Workflow
from engine import Client, Engine
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


def status(workflow_id: str) -> str:
    return Workflow.objects.get(workflow_uuid=workflow_id).status


def wait_for(workflow_id: str, wanted: str, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if status(workflow_id) == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"{workflow_id} is {status(workflow_id)}, not {wanted}")


@pytest.fixture
def app(make_engine, db, monkeypatch):
    """A launched engine with a workflow that blocks until released, and the console's
    actions aimed at the same database."""
    # A bulk action runs on a worker thread like any workflow: leave room for it beside the
    # 60 workflows some tests hold in a step (a worker whose threads are all stuck in steps
    # runs no bulk action until one frees: see README, "Bulk actions").
    engine: Engine = make_engine("operate-app", max_workflow_threads=80)
    gate = threading.Event()
    gate.set()

    @engine.step(name="hold")
    def hold(x):
        gate.wait(20)
        return x

    @engine.workflow(name="held")
    def held(ctx, x):
        hold(x)
        return ctx.run_step(lambda: x * 2)

    bulk.register(engine)  # as console/worker.py does for runworker
    engine.launch()
    site.point_engine_database(db)
    with connections["default"].cursor() as cur:  # each test starts with an empty trail
        for table in ("console_bulkjob", "console_audittarget", "console_auditrecord"):
            cur.execute(f"DELETE FROM {table}")
    client = Client(db.url, schema=db.schema)
    monkeypatch.setattr(actions, "client", lambda: client)
    yield engine, gate
    gate.set()
    client.close()
    connections["waymark"].close()


def user(role: str) -> WebClient:
    account, created = get_user_model().objects.get_or_create(
        username=f"{role}-user", defaults={"is_staff": role == "admin"}
    )  # as createuser does
    if created:
        account.groups.add(Group.objects.get(name=role))
    web = WebClient(HTTP_USER_AGENT="pytest-browser")
    web.force_login(account)
    return web


def start_blocked(engine: Engine, gate: threading.Event, workflow_id: str) -> None:
    gate.clear()
    engine.start_workflow("held", 21, workflow_id=workflow_id)
    wait_for(workflow_id, "PENDING")


@pytest.mark.parametrize("action", ["cancel", "resume", "fork"])
def test_a_viewer_gets_403_on_every_action_and_nothing_changes(app, action) -> None:
    engine, gate = app
    start_blocked(engine, gate, "v-1")
    viewer = user("viewer")
    assert viewer.get(f"/workflows/v-1/{action}/").status_code == 403
    assert viewer.post(f"/workflows/v-1/{action}/", {"reason": "no"}).status_code == 403
    assert (
        viewer.post("/bulk/", {"action": "cancel", "ids": ["v-1"], "confirm": "1"}).status_code
        == 403
    )
    assert status("v-1") == "PENDING"
    assert AuditRecord.objects.count() == 0
    page = viewer.get("/workflows/v-1/").content
    assert b'class="actions"' not in page and b"Cancel\xe2\x80\xa6" not in page
    assert viewer.get("/audit/").status_code == 403


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_operators_cancel_resume_and_fork_with_confirmation_and_audit(app, role) -> None:
    engine, gate = app
    start_blocked(engine, gate, "op-1")
    web = user(role)
    detail = web.get("/workflows/op-1/").content
    assert b"Cancel\xe2\x80\xa6" in detail and b"Resume\xe2\x80\xa6" not in detail
    confirm = web.get("/workflows/op-1/cancel/")
    assert (
        b"next step boundary" in confirm.content
        and b"the step in progress completes" in confirm.content
    )
    response = web.post(
        "/workflows/op-1/cancel/",
        {"reason": "stuck <script>x</script>"},
        REMOTE_ADDR="10.1.2.3",
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/workflows/op-1/"
    assert b"Cancel: cancelled" in response.content
    assert status("op-1") == "CANCELLED"
    gate.set()
    assert b"Resume\xe2\x80\xa6" in web.get("/workflows/op-1/").content
    web.post("/workflows/op-1/resume/", {"reason": "retry"})
    wait_for("op-1", "SUCCESS")
    forked = web.post("/workflows/op-1/fork/", {"step": "2", "reason": "again"})
    new_id = forked["Location"].split("/")[2]
    assert new_id != "op-1"
    wait_for(new_id, "SUCCESS")
    assert Workflow.objects.get(workflow_uuid=new_id).forked_from == "op-1"

    records = list(AuditRecord.objects.order_by("at", "id"))
    assert [r.action for r in records] == ["cancel", "resume", "fork"]
    first = records[0]
    assert first.actor == f"{role}-user" and first.source == "console"
    assert first.status_before == {"op-1": "PENDING"}
    assert first.status_after == {"op-1": "CANCELLED"}
    assert first.client_address == "10.1.2.3" and first.user_agent == "pytest-browser"
    assert first.reason == "stuck <script>x</script>" and first.ok
    assert new_id in records[2].outcome
    strip = web.get("/workflows/op-1/").content
    assert b"Operator actions" in strip and b"&lt;script&gt;x" in strip
    assert b"<script>x</script>" not in strip


def test_only_valid_actions_are_shown_and_invalid_ones_refused(app) -> None:
    engine, _ = app
    engine.start_workflow("held", 1, workflow_id="done-1").get_result(timeout=10)
    web = user("operator")
    page = web.get("/workflows/done-1/").content
    assert b"Fork\xe2\x80\xa6" in page
    assert b"Cancel\xe2\x80\xa6" not in page and b"Resume\xe2\x80\xa6" not in page
    refused = web.post("/workflows/done-1/cancel/", {}, follow=True)
    assert b"cannot cancel a workflow that is SUCCESS" in refused.content
    assert AuditRecord.objects.get().ok is False
    assert web.get("/workflows/done-1/explode/").status_code == 404
    assert web.post("/workflows/nope/cancel/").status_code == 404


def test_csrf_is_required_on_every_post(app) -> None:
    engine, gate = app
    start_blocked(engine, gate, "csrf-1")
    account, _ = get_user_model().objects.get_or_create(username="csrf-op")
    account.groups.add(Group.objects.get(name="operator"))
    strict = WebClient(enforce_csrf_checks=True)
    strict.force_login(account)
    assert strict.post("/workflows/csrf-1/cancel/", {"reason": "x"}).status_code == 403
    assert strict.post("/bulk/", {"action": "cancel", "ids": ["csrf-1"]}).status_code == 403
    assert status("csrf-1") == "PENDING"


def test_bulk_cancel_selection_and_all_matching_with_progress(app) -> None:
    engine, gate = app
    gate.clear()
    for i in range(60):
        engine.start_workflow("held", i, workflow_id=f"bulk-{i:02d}")
    web = user("operator")
    confirm = web.post("/bulk/", {"action": "cancel", "ids": ["bulk-00", "bulk-01"]})
    assert b"Cancel 2 selected" in confirm.content
    first = web.post(
        "/bulk/",
        {"action": "cancel", "ids": ["bulk-00", "bulk-01"], "confirm": "1", "reason": "selection"},
    )
    wait_until(lambda: b"done" in web.get(first["Location"]).content, what="the first bulk")
    done = web.get(first["Location"]).content
    assert b"cancelled: 2" in done and b"2 workflows: 2 cancelled" in done
    assert status("bulk-00") == status("bulk-01") == "CANCELLED"

    matching = web.post(
        "/bulk/", {"action": "cancel", "all": "1", "query": "id=bulk-&status=PENDING"}
    )
    assert b"all 58 matching" in matching.content
    progress = web.post(
        "/bulk/",
        {"action": "cancel", "all": "1", "confirm": "1", "query": "id=bulk-&status=PENDING"},
    )
    job_url = progress["Location"]
    wait_until(lambda: b"done" in web.get(job_url).content, what="the bulk action to finish")
    gate.set()
    assert (
        Workflow.objects.filter(workflow_uuid__startswith="bulk-", status="CANCELLED").count() == 60
    )
    record = AuditRecord.objects.get(action="bulk_cancel", filter="id=bulk-&status=PENDING")
    assert len(record.workflow_ids) == 58 and record.ok
    assert web.get(job_url, HTTP_HX_REQUEST="true").status_code == 286


def test_audit_page_filters_csv_and_is_append_only(app) -> None:
    engine, gate = app
    start_blocked(engine, gate, "aud-1")
    operator = user("operator")
    operator.post("/workflows/aud-1/cancel/", {"reason": "incident 42"})
    admin = user("admin")
    page = admin.get("/audit/?actor=operator-user&action=cancel&target=aud-1&since=1h")
    assert page.status_code == 200 and b"incident 42" in page.content
    assert b"incident 42" not in admin.get("/audit/?actor=somebody").content
    assert admin.get("/audit/?since=forever").status_code == 400
    export = admin.get("/audit/?format=csv")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:4] == ["at", "actor", "source", "action"]
    assert rows[1][1:4] == ["operator-user", "console", "cancel"] and rows[1][6] == "incident 42"
    record = AuditRecord.objects.get()
    with pytest.raises(ReadOnlyError):
        record.save()
    with pytest.raises(ReadOnlyError):
        record.delete()
    with pytest.raises(ReadOnlyError):
        AuditRecord.objects.update(reason="rewritten")
    assert admin.get(f"/admin/console/auditrecord/{record.pk}/change/").status_code == 200
    assert admin.get(f"/admin/console/auditrecord/{record.pk}/delete/").status_code == 403
    before = AuditRecord.objects.count()
    for path in ("/", "/workflows/", "/workflows/aud-1/", "/audit/", "/queues/"):
        admin.get(path)
    assert AuditRecord.objects.count() == before  # viewing pages writes nothing


def test_cli_lists_reads_and_acts_with_an_audited_os_user(app, capsys) -> None:
    import getpass

    engine, gate = app
    start_blocked(engine, gate, "cli-1")
    call_command("workflows", "list", "--json", "--limit", "5")
    listed = json.loads(capsys.readouterr().out)
    assert any(w["workflow_id"] == "cli-1" for w in listed)
    call_command("workflows", "get", "cli-1", "--json")
    assert json.loads(capsys.readouterr().out)["status"] == "PENDING"
    call_command("workflows", "cancel", "cli-1", "--reason", "from a shell", "--json")
    assert json.loads(capsys.readouterr().out)["ok"] is True
    gate.set()
    call_command("workflows", "resume", "cli-1", "--json")
    assert json.loads(capsys.readouterr().out)["message"] == "resumed"
    wait_for("cli-1", "SUCCESS")
    call_command("workflows", "steps", "cli-1", "--json")
    assert [s["name"] for s in json.loads(capsys.readouterr().out)][:1] == ["hold"]
    call_command("workflows", "fork", "cli-1", "--step", "1", "--json")
    assert json.loads(capsys.readouterr().out)["new_workflow_id"]
    records = list(AuditRecord.objects.order_by("at", "id"))
    assert [r.action for r in records] == ["cancel", "resume", "fork"]
    assert {r.source for r in records} == {"cli"} and records[0].actor == getpass.getuser()
    assert records[0].reason == "from a shell"


def test_createuser_and_check_deploy(tmp_path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'c.sqlite3'}",
        "WAYMARK_NEW_USER_PASSWORD": "a-long-password-1",
    }
    run = lambda *args, **extra: subprocess.run(  # noqa: E731
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
    )
    assert run("migrate", "-v", "0").returncode == 0
    created = run("createuser", "ops", "--role", "operator")
    assert created.returncode == 0 and "created ops (operator)" in created.stdout
    assert run("createuser", "ops", "--role", "viewer").returncode != 0  # exists
    assert (
        "too short"
        in run("createuser", "x", "--role", "viewer", WAYMARK_NEW_USER_PASSWORD="short").stderr
    )
    deploy = run(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="k" * 20 + "-a-real-secret-key-with-enough-entropy-1234567890",
        ALLOWED_HOSTS="console.example.com",
    )
    assert deploy.returncode == 0, deploy.stderr
    unsafe = run("check", "--deploy", DEBUG="0")
    assert unsafe.returncode != 0 and "SECRET_KEY must be set" in unsafe.stderr
