"""Saved views: a user names the list's filters, sees them in the nav; admins share them."""

from __future__ import annotations

from console.models import SavedView
from tests.console.test_console_content import text_of
from tests.console.test_console_operate import app, user  # noqa: F401


def nav_views(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [v.name for v in page.context["saved_views"]]


def test_users_save_views_see_them_in_the_nav_and_admins_share_them(app) -> None:
    SavedView.objects.all().delete()
    operator, viewer, admin = user("operator"), user("viewer"), user("admin")
    saved = operator.post("/views/", {"name": "failed today", "query": "since=24h&status=ERROR"})
    assert saved.status_code == 302
    assert saved["Location"] == "/workflows/?status=ERROR&since=24h"  # normalized
    page = operator.get("/queues/")
    assert nav_views(page) == ["failed today"]
    body = page.content.decode()
    assert 'href="/workflows/?status=ERROR&amp;since=24h">failed today</a>' in body
    assert nav_views(viewer.get("/queues/")) == []  # a view is its owner's
    # Only admins share; a shared view shows for everyone.
    refused = operator.post("/views/", {"name": "all", "query": "", "shared": "1"})
    assert refused.status_code == 400 and b"only admins share" in refused.content
    admin.post("/views/", {"name": "stuck queues", "query": "status=ENQUEUED", "shared": "1"})
    assert nav_views(viewer.get("/queues/")) == ["stuck queues"]
    assert nav_views(operator.get("/queues/")) == ["failed today", "stuck queues"]
    listing = operator.get("/workflows/?status=ERROR&since=24h")
    assert "Delete view “failed today”" in text_of(listing)
    # Bad input is a 400 with the reason, never a 500.
    assert operator.post("/views/", {"name": "x", "query": "status=DONE"}).status_code == 400
    assert operator.post("/views/", {"name": "", "query": ""}).status_code == 400
    again = operator.post("/views/", {"name": "failed today", "query": ""})
    assert again.status_code == 400 and b"already have a view named" in again.content
    # Owners delete their views; a shared one only its owner or an admin.
    shared = SavedView.objects.get(name="stuck queues")
    assert operator.post(f"/views/{shared.pk}/delete/").status_code == 403
    mine = SavedView.objects.get(name="failed today")
    assert viewer.post(f"/views/{mine.pk}/delete/").status_code == 404  # not visible to it
    assert operator.post(f"/views/{mine.pk}/delete/").status_code == 302
    assert admin.post(f"/views/{shared.pk}/delete/").status_code == 302
    assert not SavedView.objects.exists()
