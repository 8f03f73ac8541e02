"""The audit trail's two promises, checked directly: its CSV cells are inert in a spreadsheet,
and no one, not even a superuser, can add, change or delete a record through the admin."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory

from console.audit_trail import csv_cell
from console.models import AuditRecord


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
