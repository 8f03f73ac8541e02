"""Issue 15 in the console: cancel with children (a checkbox, on by default), and the other
operator surfaces of the parity features."""

from __future__ import annotations

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
