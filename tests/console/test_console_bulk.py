"""Bulk actions as durable workflows of the console's own (console/bulk.py): they survive a
worker stopped mid-way, act on every workflow once, report progress from the database, write
one compact audit record; stranded versions can be forked or cancelled in bulk. Both databases.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections
from django.urls import reverse

import tests.console.console_site as site
from console import actions, bulk, bulk_request
from console.models import AuditRecord, Workflow
from engine import Client
from tests.console.test_console_content import text_of
from tests.console.test_console_operate import app, user  # noqa: F401
from tests.support import wait_until


@pytest.fixture
def targets(db):
    """30 workflows waiting on a queue nobody serves (so nothing but the bulk acts on them)."""
    with connections["default"].cursor() as cur:  # each test starts with an empty trail
        for table in ("console_bulkjob", "console_audittarget", "console_auditrecord"):
            cur.execute(f"DELETE FROM {table}")
    client = Client(db.url, schema=db.schema)
    ids = [f"target/{n:02d}" for n in range(30)]
    for workflow_id in ids:
        client.start_workflow("held", 1, queue="nobody-serves-this", workflow_id=workflow_id)
    yield client, ids
    client.close()


def _build(make_engine, executor_id: str):
    """A worker's engine, with the console's workflow as console/worker.py registers it."""
    engine = make_engine("bulk-app", executor_id=executor_id, application_version="v-bulk")
    bulk.register(engine)
    return engine


def test_a_bulk_action_survives_its_worker_stopping_mid_way(
    make_engine, db, targets, monkeypatch
) -> None:
    client, ids = targets
    site.point_engine_database(db)
    monkeypatch.setattr(actions, "client", lambda: client)
    acted: Counter[str] = Counter()
    real_one = actions.one

    def counting_one(action, workflow_id, *args, **kwargs):
        acted[workflow_id] += 1
        return real_one(action, workflow_id, *args, **kwargs)

    monkeypatch.setattr(actions, "one", counting_one)
    # The first worker stops for good inside the third chunk, before acting on its first item.
    entered, never = threading.Event(), threading.Event()
    real_once = bulk._act_once

    def stuck_in_chunk_3(action, workflow_id, *args):
        if workflow_id == ids[10]:
            entered.set()
            never.wait(60)
            raise RuntimeError("this worker is gone")  # never recorded: its store is closed
        return real_once(action, workflow_id, *args)

    monkeypatch.setattr(bulk, "_act_once", stuck_in_chunk_3)
    first = _build(make_engine, "bulk-worker")
    first.launch()
    record = bulk_request.request(
        actions.Actor("op"), "cancel", ids, "incident 9", "id=target/", chunk=5
    )
    wait_until(entered.is_set, what="the bulk action to reach its third chunk")
    web = user("operator")
    midway = text_of(web.get(f"/bulk/{record.pk}/"))
    assert "Bulk cancel: 10 of 30" in midway and "cancelled: 10" in midway
    first.shutdown(timeout=0.5)  # the step in progress is abandoned, never recorded
    try:
        assert AuditRecord.objects.get(pk=record.pk).completed_at is None
        # A new worker process (same executor, as a restarted runworker --executor-id) picks
        # the bulk workflow up: chunks 1-2 replay from their checkpoints, 3-6 run.
        monkeypatch.setattr(bulk, "_act_once", real_once)
        second = _build(make_engine, "bulk-worker")
        second.launch()
        wait_until(
            lambda: AuditRecord.objects.get(pk=record.pk).completed_at is not None,
            what="the bulk action to finish on the second worker",
        )
    finally:
        never.set()
    done = AuditRecord.objects.get(pk=record.pk)
    assert done.ok and done.outcome == "30 workflows: 30 cancelled"
    assert set(done.status_after.values()) == {"CANCELLED"}
    assert acted == Counter({i: 1 for i in ids})  # every workflow acted on once
    assert {w.status for w in Workflow.objects.filter(workflow_uuid__in=ids)} == {"CANCELLED"}
    # The progress page reads the database: a fresh web client sees it whole.
    page = text_of(user("admin").get(f"/bulk/{record.pk}/"))
    assert "Bulk cancel: 30 of 30 — done" in page and "cancelled: 30" in page
    assert "target/00" in page
    # One compact audit record; the IDs on demand.
    audit = user("admin").get("/audit/?action=bulk_cancel")
    assert audit.content.count(b"<tr>") == 2  # the header and one record
    assert "and 25 more" in text_of(audit)
    listed = user("admin").get(f"/audit/{record.pk}/ids.txt").content.decode().split("\n")
    assert listed[:-1] == ids
    # The console's own workflow is not a user workflow: hidden unless asked for.
    assert bulk.workflow_id(record.pk) not in text_of(web.get("/workflows/"))
    assert bulk.workflow_id(record.pk) in text_of(web.get("/workflows/?internal=1"))
    assert bulk.QUEUE not in text_of(web.get("/queues/"))
    connections["waymark"].close()


def test_stranded_versions_are_forked_onto_a_live_version_or_cancelled(app, db) -> None:
    engine, _ = app
    client = actions.client()
    stranded = [f"old/{n}" for n in range(4)]
    for workflow_id in stranded:
        client.start_workflow("held", 5, workflow_id=workflow_id, application_version="v-old")
    web = user("operator")
    versions = text_of(web.get("/versions/"))
    assert "4 PENDING/ENQUEUED workflows pinned to this version" in versions
    assert "Fork 4 from their last completed step" in versions and "Cancel all 4" in versions
    query = "version=v-old&status=PENDING&status=ENQUEUED"
    form = {"action": "fork", "all": "1", "query": query, "version": engine.application_version}
    confirm = web.post("/bulk/", form)
    assert "Fork all 4 matching workflows onto version" in text_of(confirm)
    assert web.post("/bulk/", {**form, "version": "v-nobody-runs"}).status_code == 400
    started = web.post("/bulk/", {**form, "confirm": "1", "reason": "v-old is gone"})
    record_id = int(started["Location"].strip("/").split("/")[-1])
    wait_until(
        lambda: AuditRecord.objects.get(pk=record_id).completed_at is not None,
        what="the bulk fork",
    )
    for workflow_id in stranded:
        fork = Workflow.objects.get(forked_from=workflow_id)
        assert fork.workflow_uuid == bulk.fork_id(workflow_id, record_id)
        assert fork.application_version == engine.application_version
        wait_until(lambda f=fork: Workflow.objects.get(pk=f.pk).status == "SUCCESS")
        page = web.get(reverse("workflow_detail", args=[fork.workflow_uuid]))
        assert "v-old is gone" in text_of(page)  # the bulk record, on each fork's page
    record = AuditRecord.objects.get(pk=record_id)
    assert record.action == "bulk_fork" and record.outcome == "4 workflows: 4 forked"
    cancel = {"action": "cancel", "all": "1", "query": query, "confirm": "1"}
    web.post("/bulk/", cancel)
    wait_until(
        lambda: (
            {w.status for w in Workflow.objects.filter(workflow_uuid__in=stranded)} == {"CANCELLED"}
        ),
        what="the stranded workflows to be cancelled",
    )
    assert "pinned to this version" not in text_of(web.get("/versions/"))
