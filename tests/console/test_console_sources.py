"""Another Waymark database as a source: its pages read it and its actions act on it, never on
the engine's own database."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client as WebClient
from django.test import override_settings

import tests.console.console_site as site
from console import actions, sources
from console.models import AuditRecord
from engine import Client


def operator() -> WebClient:
    account, created = get_user_model().objects.get_or_create(username="operator-sources")
    if created:
        account.groups.add(Group.objects.get(name="operator"))
    web = WebClient()
    web.force_login(account)
    return web


def paused(client: Client, name: str) -> bool:
    return any(q.name == name and q.paused for q in client.list_queues())


@pytest.fixture
def two_databases(db, tmp_path, monkeypatch):
    """The engine's own database (``db``) and another, as the source "other"."""
    site.point_engine_database(db)
    own = Client(db.url, schema=db.schema)
    monkeypatch.setattr(actions, "client", lambda: own)
    url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    other = Client(url)  # migrated by the engine, like any Waymark database
    listed = [{"name": "other", "kind": "waymark", "url": url, "schema": "waymark"}]
    with override_settings(WAYMARK_SOURCES=sources.parse(json.dumps(listed))):
        yield own, other
        connections[sources.named("other").alias].close()
    actions.source_client.cache_clear()
    other.close()
    own.close()
    connections["waymark"].close()


def test_queue_control_on_another_source_acts_on_that_database(two_databases) -> None:
    own, other = two_databases
    for client in (own, other):  # a queue the console knows of: work waits on it
        client.start_workflow("bill", queue="billing", workflow_id="bill-1")
    web = operator()
    response = web.post("/queues/billing/pause/?source=other", {"reason": "drain"})
    assert response.status_code == 302 and "source=other" in response["Location"]
    assert paused(other, "billing") and not paused(own, "billing")
    record = AuditRecord.objects.filter(action="queue_pause").order_by("-id").first()
    assert record and record.ok and record.status_after["queue:billing"].startswith("PAUSED")

    web.post("/queues/billing/limits/?source=other", {"concurrency": "4"})
    [info] = [q for q in other.list_queues() if q.name == "billing"]
    assert info.concurrency == 4
    [mine] = [q for q in own.list_queues() if q.name == "billing"]
    assert mine.concurrency is None and not mine.paused


def test_export_on_another_source_exports_from_that_database(two_databases) -> None:
    own, other = two_databases
    own.start_workflow("bill", {"db": "own"}, queue="billing", workflow_id="bill-1")
    other.start_workflow("bill", {"db": "other"}, queue="billing", workflow_id="bill-1")
    response = operator().get("/workflows/bill-1/export.json", {"source": "other"})
    assert response.status_code == 200
    assert json.loads(response.content) == other.export_workflow("bill-1")
    assert json.loads(response.content) != own.export_workflow("bill-1")
