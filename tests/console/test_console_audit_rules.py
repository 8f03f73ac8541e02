"""The audit trail's two promises, checked directly: its CSV cells are inert in a spreadsheet,
and no one, not even a superuser, can add, change or delete a record through the admin."""

from __future__ import annotations

import re
import threading

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory

from console import bulk
from console.audit_trail import csv_cell
from console.models import AuditRecord
from engine import Engine
from tests.console.test_console_operate import app, user  # noqa: F401
from tests.support import wait_until


def test_csv_cells_are_text_and_formulas_are_quoted() -> None:
    assert csv_cell(None) == ""
    assert csv_cell(0) == "0"
    assert csv_cell("plain text") == "plain text"
    assert csv_cell("a=b") == "a=b"  # only a leading formula character matters
    for formula in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(formula) == "'" + formula


@pytest.mark.parametrize("check", ["add", "change", "delete"])
def test_the_admin_never_writes_the_audit_trail(check: str) -> None:
    request = RequestFactory().get("/admin/")
    request.user = User(username="root", is_superuser=True, is_staff=True, is_active=True)
    model_admin = admin.site.get_model_admin(AuditRecord)
    allowed = getattr(model_admin, f"has_{check}_permission")
    assert (allowed(request) if check == "add" else allowed(request, None)) is False


def test_the_trail_shows_how_far_an_unfinished_bulk_action_got(app, make_engine) -> None:
    """An unfinished bulk record reads its bulk workflow's progress event: "3 of 10 done",
    the total being the record's own count of workflows; a record whose bulk workflow never
    started says only that its intent was recorded."""
    running = AuditRecord.objects.create(
        actor="operator-user", action="bulk_cancel", workflow_ids=[f"b-{i}" for i in range(10)]
    )
    AuditRecord.objects.create(actor="operator-user", action="bulk_resume", workflow_ids=["x"])
    release = threading.Event()
    shadow: Engine = make_engine("bulk-shadow")

    @shadow.workflow(name="shadow_bulk")
    def shadow_bulk(ctx):
        ctx.set_event(bulk.PROGRESS, {"done": 3, "total": None, "counts": {"cancelled": 3}})
        ctx.run_step(lambda: release.wait(30))

    shadow.launch()
    handle = shadow.start_workflow(shadow_bulk, workflow_id=bulk.workflow_id(running.pk))
    wait_until(lambda: shadow.get_event(handle.workflow_id, bulk.PROGRESS, timeout=0) is not None)
    try:
        page = user("admin").get("/audit/")
        text = " ".join(re.sub(r"<[^>]+>", " ", page.content.decode()).split())
        assert "unfinished 3 of 10 done" in text
        assert text.count("unfinished intent recorded, no outcome") == 1
    finally:
        release.set()
    handle.get_result(timeout=30)
