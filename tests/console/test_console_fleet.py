"""The console sees the Celery fleet (issue 17): an executors page with roles and Celery node
names, handed-over workflows counted apart from running ones on /queues/, and listed as stuck
once no worker took them; work of an executor whose heartbeat expired is stuck too."""

from __future__ import annotations

import pytest

import tests.console.console_site as site
from console import fleet
from engine import Engine
from tests.console.test_console_operate import user
from tests.engine.test_handoff import Recorder, build
from tests.support import wait_until


@pytest.fixture
def handed(make_engine, db, monkeypatch):
    """A dispatcher that handed three workflows to Celery (no Celery worker runs)."""
    recorder = Recorder()
    dispatcher: Engine = make_engine(
        "fleet-app",
        executor_id="dispatcher-1",
        application_version="v9",
        dispatcher=recorder,
        heartbeat_timeout=90,  # its next sweep (of the dead executor below) is 30 s away
    )
    build(dispatcher)
    dispatcher.launch()
    site.point_engine_database(db)
    ids = [dispatcher.start_workflow("job", i, queue="jobs").workflow_id for i in range(3)]
    wait_until(lambda: len(recorder.sent) == 3, limit=60, what="three hand-offs")
    yield ids


def test_the_executors_page_shows_roles_and_stranded_versions(handed, db) -> None:
    db.raw(
        "INSERT INTO executors (executor_id, application_version, hostname, pid, started_at, "
        "last_heartbeat, role, node_name) VALUES ('celery-a@h-1', 'v1', 'h', 1, 0, 0, "
        "'celery', 'a@h')"
    )
    db.raw("UPDATE executors SET last_heartbeat = 0 WHERE executor_id = 'celery-a@h-1'")
    page = user("viewer").get("/executors/")
    assert page.status_code == 200
    rows = {i.executor.executor_id: i for i in page.context["executors"]}
    assert rows["dispatcher-1"].executor.role == "dispatcher" and rows["dispatcher-1"].alive
    assert rows["dispatcher-1"].running == 3
    assert "celery-a@h-1" not in rows  # long dead: off the page
    assert page.context["stranded"] == ["v9"]  # dispatched, and no Celery worker runs v9
    assert "Stranded" in page.content.decode()


def test_handed_over_work_is_not_running_and_becomes_stuck(handed, db, monkeypatch) -> None:
    page = user("viewer").get("/queues/")
    (jobs,) = [q for q in page.context["queues"] if q.name == "jobs"]
    assert (jobs.running, jobs.handed_over) == (0, 3)
    monkeypatch.setenv("WAYMARK_CELERY_RESEND_AFTER", "3600")
    assert user("viewer").get("/").context["stuck"] == []  # just handed over: not yet
    monkeypatch.setenv("WAYMARK_CELERY_RESEND_AFTER", "0")
    wait_until(
        lambda: {w.workflow_uuid for w in user("viewer").get("/").context["stuck"]} == set(handed),
        limit=60,
        what="untaken hand-offs listed as stuck",
    )
    assert fleet.resend_after_ms() == 0


def test_work_of_an_expired_executor_is_stuck(handed, db) -> None:
    db.raw(
        "INSERT INTO executors (executor_id, application_version, hostname, pid, started_at, "
        "last_heartbeat, role, node_name) VALUES ('celery-gone', 'v9', 'h', 2, 0, 0, 'celery', "
        "'b@h')"
    )
    db.raw(
        "UPDATE workflow_status SET executor_id = 'celery-gone' "
        f"WHERE workflow_uuid = '{handed[0]}'"
    )
    stuck = user("viewer").get("/").context["stuck"]
    assert handed[0] in {w.workflow_uuid for w in stuck}
