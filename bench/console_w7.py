"""W7: the console at scale. 1,000,000 workflows (10 names, 5 statuses, 20 steps for 1% of
them, one workflow with 5,000 steps, three queues) in Postgres; p50/p95 server time of the list
page (unfiltered, by status, by name, by ID prefix), of the 5,000-step detail page and of
/metrics (a Prometheus scrape with the bearer token).

Server time = the Django view answering a request in-process (test client), database
queries and template rendering included, network excluded.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

import psycopg

from bench import setup

SEED = [
    # Every ENQUEUED workflow is on a queue (as the engine does it), and so is half the rest:
    # three queues for /metrics' per-queue gauges.
    """INSERT INTO workflow_status (workflow_uuid, status, name, inputs, output, executor_id,
           application_version, created_at, updated_at, recovery_attempts, priority,
           serialization, completed_at, queue_name)
       SELECT 'wf-' || lpad(i::text, 8, '0'),
              (ARRAY['SUCCESS','ERROR','PENDING','CANCELLED','ENQUEUED'])[1 + i %% 5],
              'app.workflow_' || (i %% 10), '{"positionalArgs":[1],"namedArgs":{}}', '1',
              'bench-executor', 'v1', 1700000000000 + i * 10, 1700000000000 + i * 10 + 5, 0, 0,
              'portable_json', 1700000000000 + i * 10 + 5,
              CASE WHEN i %% 5 = 4 OR i %% 2 = 0 THEN 'bench.q' || (i %% 3) END
       FROM generate_series(1, %(n)s) AS i""",
    """INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output,
           started_at_epoch_ms, completed_at_epoch_ms, serialization)
       SELECT 'wf-' || lpad(i::text, 8, '0'), s, 'step_' || s, '"ok"',
              1700000000000 + i * 10, 1700000000000 + i * 10 + 1, 'portable_json'
       FROM generate_series(100, %(n)s, 100) AS i, generate_series(1, 20) AS s""",
    """INSERT INTO workflow_status (workflow_uuid, status, name, inputs, created_at,
           updated_at, recovery_attempts, priority, serialization)
       VALUES ('wf-big', 'PENDING', 'app.long', '{"positionalArgs":[1],"namedArgs":{}}',
               1800000000000, 1800000000000, 0, 0, 'portable_json')""",
    """INSERT INTO operation_outputs (workflow_uuid, function_id, function_name, output,
           started_at_epoch_ms, completed_at_epoch_ms, serialization)
       SELECT 'wf-big', s, 'step_' || s, '{"i":' || s || '}', 1800000000000 + s * 100,
              1800000000000 + s * 100 + 50, 'portable_json'
       FROM generate_series(1, 5000) AS s""",
    "ANALYZE",
]

PAGES = {
    "list": "/workflows/",
    "list_status": "/workflows/?status=ERROR",
    "list_name": "/workflows/?name=app.workflow_3",
    "list_id_prefix": "/workflows/?id=wf-0001234",
    "detail_5000_steps": "/workflows/wf-big/",
    "metrics": "/metrics",
}
METRICS_TOKEN = "w7-bench-token"  # /metrics is read as Prometheus would: with the bearer token
HEADERS = {"metrics": {"Authorization": f"Bearer {METRICS_TOKEN}"}}


def w7_console(target: setup.Target, quick: bool) -> dict[str, Any]:
    if target.backend != "postgres":
        return {
            "workload": "W7",
            "n": 0,
            "seconds": 0.0,
            "per_sec": 0.0,
            "ms_each": 0.0,
            "skipped": "W7 measures the console on Postgres",
        }
    from engine import store

    n = 100_000 if quick else 1_000_000
    system = store.connect(target.url, target.schema)
    system.migrate()  # the schema and tables
    system.close()
    started = time.perf_counter()
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{target.schema}"'.encode())
        for sql in SEED:
            conn.execute(sql, {"n": n})  # type: ignore[call-overload]
    seeded = time.perf_counter() - started

    home = tempfile.mkdtemp(prefix="waymark-w7-")
    os.environ.update(
        {
            "DATABASE_URL": f"sqlite:///{home}/console.sqlite3",
            "WAYMARK_DATABASE_URL": target.url,
            "WAYMARK_SCHEMA": target.schema,
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "WAYMARK_METRICS_TOKEN": METRICS_TOKEN,
        }
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0)
    client = Client()
    client.force_login(get_user_model().objects.create_user("bench"))
    figures: dict[str, Any] = {"seed_seconds": round(seeded, 1)}
    repeats = 20 if quick else 50
    for label, url in PAGES.items():
        headers = HEADERS.get(label, {})
        client.get(url, headers=headers)  # warm: connections, plans, templates
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            response = client.get(url, headers=headers)
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        times.sort()
        figures[f"{label}_p50_ms"] = round(statistics.median(times), 1)
        figures[f"{label}_p95_ms"] = round(times[int(len(times) * 0.95) - 1], 1)
    worst = max(v for k, v in figures.items() if k.endswith("_p95_ms"))
    return {
        "workload": "W7",
        "n": n,
        "seconds": round(worst / 1000, 4),
        "per_sec": 0.0,
        "ms_each": worst,
        **figures,
    }
