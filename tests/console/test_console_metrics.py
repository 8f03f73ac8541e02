"""/metrics: the console's gauges from the system tables (both databases), who may read them,
caps and bounded labels, and query plans that use indexes."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client as WebClient
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

import tests.console.console_site as site
from console import gauges, metrics, stats
from engine import Client, WorkflowFailedError
from tests.support import wait_until

TOKEN = "metrics-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def fleet(make_engine, db):
    """A live executor running one workflow from a queue, a backlog nobody serves (two
    priorities, one delayed), finished workflows, and a PENDING workflow of a dead executor on
    a version nobody runs; the console aimed at it."""
    engine = make_engine("metrics-app", application_version="v-live")
    release = threading.Event()
    jobs = engine.queue("jobs")

    @engine.workflow(name="hold")
    def hold(ctx):
        release.wait(30)

    @engine.workflow(name="ok")
    def ok(ctx):
        return 1

    @engine.workflow(name="fails")
    def fails(ctx):
        raise ValueError("no")

    engine.launch()
    engine.start_workflow(ok).get_result(timeout=10)
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(fails).get_result(timeout=10)
    held = engine.start_workflow(hold, queue=jobs)
    wait_until(lambda: held.get_status().status == "PENDING", what="the held workflow to run")
    with Client(db.url, schema=db.schema) as client:
        client.start_workflow("ok", queue="backlog", priority=5, workflow_id="b-old")
        client.start_workflow("ok", queue="backlog", priority=1, workflow_id="b-new")
        client.start_workflow("ok", queue="backlog", delay=3600, workflow_id="b-later")
    old = now_ms() - 3_600_000
    db.raw(
        "INSERT INTO workflow_status (workflow_uuid, status, name, executor_id, "
        "application_version, created_at, updated_at, recovery_attempts, priority, "
        "serialization) VALUES ('orphan', 'PENDING', 'ok', 'gone-1', 'v-old', %s, %s, 0, 0, "
        "'portable_json')",
        (old, old),
    )
    db.raw("UPDATE workflow_status SET created_at = %s WHERE workflow_uuid = 'b-old'", (old,))
    site.point_engine_database(db)
    yield engine
    release.set()
    connections["waymark"].close()


def scrape(web: WebClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = web.get("/metrics", headers=headers or AUTH)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@override_settings(WAYMARK_METRICS_TOKEN=TOKEN)
def test_metrics_read_the_system_tables(fleet) -> None:
    found = scrape(WebClient())
    assert value(found, "waymark_workflows", status="PENDING") == 2  # held + orphan
    assert value(found, "waymark_workflows", status="ENQUEUED") == 2
    assert value(found, "waymark_workflows", status="DELAYED") == 1
    assert value(found, "waymark_workflows_recent", status="SUCCESS", window="1h") == 1
    assert value(found, "waymark_workflows_recent", status="ERROR", window="24h") == 1
    assert value(found, "waymark_workflows_recent", status="CANCELLED", window="1h") == 0
    assert value(found, "waymark_queue_enqueued", queue="backlog") == 2
    assert value(found, "waymark_queue_delayed", queue="backlog") == 1
    assert value(found, "waymark_queue_running", queue="jobs") == 1
    assert value(found, "waymark_queue_enqueued", queue="jobs") == 0  # declared, served, empty
    age = value(found, "waymark_queue_oldest_enqueued_age_seconds", queue="backlog")
    assert 3590 < age < 3700  # b-old (priority 5) is older than b-new (priority 1)
    assert value(found, "waymark_queue_oldest_enqueued_age_seconds", queue="jobs") == 0
    assert value(found, "waymark_workflows_stuck") == 1  # the orphan, not the held one
    assert value(found, "waymark_workflows_stranded") == 1  # v-old: no live executor
    assert 3590 < value(found, "waymark_workflows_pending_oldest_age_seconds") < 3700
    assert value(found, "waymark_executors_live", application_version="v-live") == 1
    assert value(found, "waymark_table_rows_estimate", table="workflow_status") >= 0
    assert value(found, "waymark_console_scrape_duration_seconds") > 0


@override_settings(WAYMARK_METRICS_TOKEN=TOKEN)
def test_openmetrics_when_the_scraper_asks_for_it(fleet) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = WebClient().get("/metrics", headers={**AUTH, "Accept": accept})
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.endswith(b"# EOF\n")
    assert b'waymark_workflows{status="DELAYED"} 1.0' in response.content


def test_schedule_lag_counts_from_the_first_missed_tick(fleet, db) -> None:
    started = now_ms() - 600_000
    db.raw(
        "INSERT INTO executors (executor_id, application_version, queues, schedules, "
        "started_at, last_heartbeat) VALUES ('cron-host', 'v-live', '[]', %s, %s, %s)",
        ('{"nightly": "0 0 1 1 *", "minutely": "* * * * *"}', started, now_ms()),
    )
    # minutely's latest run was the tick 3 to 4 minutes ago: the one after it is 2 to 3 minutes
    # overdue.
    tick = time.gmtime((now_ms() - 180_000) // 60_000 * 60)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", tick)
    db.raw(
        "INSERT INTO workflow_status (workflow_uuid, status, name, created_at, updated_at, "
        "recovery_attempts, priority, serialization) VALUES (%s, 'SUCCESS', 'minutely', %s, %s, "
        "0, 0, 'portable_json')",
        (f"minutely@{iso}", now_ms() - 180_000, now_ms() - 180_000),
    )
    lags = gauges.schedule_lag(stats.live_executors(now_ms()), now_ms())
    assert lags["nightly"] == 0  # its next tick is months away
    assert 110 < lags["minutely"] <= 190


def test_counts_are_capped_and_queue_labels_bounded(fleet, monkeypatch) -> None:
    monkeypatch.setattr(gauges, "CAP", 1)
    readings = gauges.read(now_ms())
    assert readings.unfinished["PENDING"] == 1  # two, counted up to the cap
    assert readings.queues["backlog"].enqueued == 1  # two
    assert readings.stuck == 1 and readings.stranded == 1
    assert len(readings.queues) == 3  # _waymark (internal), backlog, jobs
    monkeypatch.setattr(gauges, "MAX_QUEUES", 2)
    assert len(gauges.read(now_ms()).queues) == 2


@override_settings(WAYMARK_METRICS_TOKEN=TOKEN)
def test_who_may_read_the_metrics(fleet) -> None:
    anonymous = WebClient().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    wrong = WebClient().get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401 and b"guess" not in wrong.content
    assert TOKEN.encode() not in wrong.content
    basic = WebClient().get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401

    users = get_user_model()
    viewer, _ = users.objects.get_or_create(username="metrics-viewer")
    web = WebClient()
    web.force_login(viewer)
    assert web.get("/metrics").status_code == 403
    assert web.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    boss, _ = users.objects.get_or_create(username="metrics-boss", is_superuser=True)
    web.force_login(boss)
    assert web.get("/metrics").status_code == 200
    assert WebClient().post("/metrics", headers=AUTH).status_code == 405


def test_admins_may_read_the_metrics(fleet) -> None:
    admin, _ = get_user_model().objects.get_or_create(username="metrics-admin")
    admin.groups.set([Group.objects.get(name="admin")])
    web = WebClient()
    web.force_login(admin)
    assert web.get("/metrics").status_code == 200
    operator, _ = get_user_model().objects.get_or_create(username="metrics-operator")
    operator.groups.set([Group.objects.get(name="operator")])
    web.force_login(operator)
    assert web.get("/metrics").status_code == 403


def test_no_token_configured_refuses_every_bearer(fleet) -> None:
    with override_settings(WAYMARK_METRICS_TOKEN=""):
        assert WebClient().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
        assert WebClient().get("/metrics", headers=AUTH).status_code == 401


def test_describe_names_what_collect_exports(fleet) -> None:
    collector = metrics.ConsoleCollector()
    described = {f.name for f in collector.describe()}
    collected = {f.name for f in collector.collect()}
    assert described == collected == set(metrics.GAUGES)
    # Prometheus naming: one prefix, units spelled out, no counter suffix on a gauge.
    assert all(n.startswith("waymark_") and not n.endswith("_total") for n in described)


def test_metrics_queries_use_indexes_on_postgres(fleet, db) -> None:
    """EXPLAIN every query a scrape makes, on a table big enough for the planner to care."""
    if db.backend != "postgres":
        pytest.skip("plans are checked on Postgres, the production database")
    db.raw(
        "INSERT INTO workflow_status (workflow_uuid, status, name, inputs, created_at, "
        "updated_at, recovery_attempts, priority, serialization, queue_name, executor_id, "
        "application_version) "
        "SELECT 'seed-' || lpad(i::text, 6, '0'), "
        "(ARRAY['SUCCESS','ERROR','PENDING','CANCELLED','ENQUEUED'])[1 + i % 5], "
        "'app.wf_' || (i % 10), '{}', 1700000000000 + i, 1700000000000 + i, 0, i % 3, "
        "'portable_json', CASE WHEN i % 5 = 4 OR i % 2 = 0 THEN 'q' || (i % 3) END, 'gone', 'v0' "
        "FROM generate_series(1, 30000) AS i"
    )
    db.raw("ANALYZE workflow_status")
    with CaptureQueriesContext(connections["waymark"]) as captured:
        gauges.read(now_ms())
    # Six statements, however many rows, queues or schedules: executors, PENDING/DELAYED,
    # the scalar counts, queue names, backlogs, table estimates.
    assert len(captured.captured_queries) <= 6, [q["sql"][:80] for q in captured.captured_queries]
    with connections["waymark"].cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute("EXPLAIN " + query["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan on workflow_status" not in plan, (query["sql"], plan)
