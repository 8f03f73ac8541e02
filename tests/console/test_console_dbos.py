"""The console on a DBOS application's system database, written by the real dbos-py package
(tests/apps/dbosapp.py, run in a subprocess against a fresh schema in the test database)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client as WebClient
from django.test import override_settings

import tests.console.console_site  # noqa: F401  (Django set up)
from console import bulk_request, sources
from tests.conftest import PG_URL

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("dbos")


def _seed(url: str, schema: str, tmp: Path) -> None:
    log = tmp / "dbosapp.log"
    with log.open("wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "tests.apps.dbosapp", "seed", url, schema],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False,
        )  # fmt: skip
    assert done.returncode == 0 and b"seeded" in log.read_bytes(), log.read_text()[-4000:]


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def dbos_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[dict[str, str]]]:
    """A DBOS system database (a fresh Postgres schema, or a SQLite file), as a source."""
    tmp = tmp_path_factory.mktemp("dbos")
    schema = f"dbos_t_{uuid.uuid4().hex[:10]}"
    name = f"dbos-{request.param}-{schema[7:]}"
    if request.param == "postgres":
        try:
            psycopg.connect(PG_URL, connect_timeout=3).close()
        except psycopg.Error as exc:
            pytest.skip(f"PostgreSQL unreachable: {exc}")
        url = PG_URL
    else:
        url = f"sqlite:///{tmp / 'dbos.sqlite'}"
    _seed(url, schema, tmp)
    listed = [{"name": name, "kind": "dbos", "url": url, "schema": schema}]
    try:
        yield listed
    finally:
        if request.param == "postgres":
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def dbos_source(dbos_db: list[dict[str, str]]) -> Iterator[str]:
    """The seeded database as a source, for this test only (xdist may interleave modules)."""
    with override_settings(WAYMARK_SOURCES=dbos_db):
        yield dbos_db[0]["name"]
        connections[sources.named(dbos_db[0]["name"]).alias].close()


def user(role: str) -> WebClient:
    account, created = get_user_model().objects.get_or_create(username=f"{role}-dbos")
    if created:
        account.groups.add(Group.objects.get(name=role))
    web = WebClient()
    web.force_login(account)
    return web


def page(web: WebClient, path: str, source: str, code: int = 200, **params: str) -> str:
    response = web.get(path, {"source": source, **params})
    assert response.status_code == code, response.content[:2000]
    return response.content.decode()


def test_every_page_reads_the_dbos_database_and_links_keep_the_source(dbos_source) -> None:
    web = user("viewer")
    for path in ("/", "/workflows/", "/queues/", "/versions/", "/schedules/"):
        html = page(web, path, dbos_source)
        assert f"source={dbos_source}" in html
        assert 'href="/workflows/?' in html or path != "/workflows/"
    listing = page(web, "/workflows/", dbos_source)
    for wid in SEEDED:
        assert f"/workflows/{wid}/?source={dbos_source}" in listing, wid
    errors = page(web, "/workflows/", dbos_source, status="ERROR")
    assert "fail-1" in errors and "ok-1/" not in errors
    assert 'name="source"' in listing  # GET forms carry it in a field


SEEDED = ("ok-1", "portable-1", "fail-1", "parent-1", "parent-1-1", "inbox-1", "chatty-1",
          "reporter-1", "cancelled-1", "queued-1", "sleeping-1", "ticking-1")  # fmt: skip


def test_every_list_filter_reads_dbos_columns(dbos_db, dbos_source) -> None:
    web = user("viewer")
    executor = _query(dbos_db[0], "SELECT executor_id FROM workflow_status"
                      " WHERE workflow_uuid = %s", "ok-1")[0][0]  # fmt: skip
    cases: list[tuple[dict[str, str], set[str]]] = [
        ({"status": "PENDING"}, {"sleeping-1", "ticking-1"}),
        ({"name": "greet_portable"}, {"portable-1"}),
        ({"queue": "parked"}, {"queued-1"}),
        ({"id": "sleep"}, {"sleeping-1"}),
        ({"parent": "parent-1"}, {"parent-1-1"}),
        ({"attr.customer": "acme"}, {"ok-1"}),
        ({"attr.tier": "2"}, {"ok-1"}),
        ({"attr.customer": "other"}, set()),
        ({"executor": str(executor), "id": "ok-"}, {"ok-1"}),
        ({"since": "24h", "id": "ok-"}, {"ok-1"}),
        ({"before": "2001-01-01T00:00"}, set()),
        ({"after": "2001-01-01T00:00", "version": "v1", "id": "fail"}, {"fail-1"}),
    ]
    for query, expected in cases:
        html = page(web, "/workflows/", dbos_source, **query)
        shown = {w for w in SEEDED if f"/workflows/{w}/?source={dbos_source}" in html}
        assert shown == expected, query
    assert "customer=acme" in page(web, "/workflows/ok-1/", dbos_source)


def test_detail_reads_inputs_and_outputs_where_dbos_keeps_them(dbos_source) -> None:
    web = user("viewer")
    portable = page(web, "/workflows/portable-1/", dbos_source)
    assert "hi BOB" in portable and "positionalArgs" in portable
    pickled = page(web, "/workflows/ok-1/", dbos_source)
    assert "pickled Python object" in pickled
    failed = page(web, "/workflows/fail-1/", dbos_source)
    assert "pickled Python exception" in failed
    with override_settings(WAYMARK_DECODE_PICKLES=True):
        decoded = page(web, "/workflows/ok-1/", dbos_source)
        assert "hello ADA" in decoded  # a dict of str: builtin values, decoded
        refused = page(web, "/workflows/fail-1/", dbos_source)
        assert "refused to load builtins.ValueError" in refused


def test_steps_events_messages_and_the_sleep_are_mapped(dbos_source) -> None:
    web = user("viewer")
    sleeping = page(web, "/workflows/sleeping-1/", dbos_source)
    assert "sleeping" in sleeping.lower() and "stranded" not in sleeping
    assert "orphaned" not in sleeping and "sends no heartbeat" not in sleeping
    chatty = page(web, "/workflows/chatty-1/", dbos_source)
    assert "progress" in chatty
    inbox = page(web, "/workflows/inbox-1/messages/", dbos_source)
    assert inbox.count("approve") == 1  # one consumed, one still waiting
    parent = page(web, "/workflows/parent-1/", dbos_source)
    assert "parent-1-1" in parent
    step = page(web, "/workflows/ok-1/steps/1/", dbos_source)
    assert "pickled Python object" in step


def test_queue_limits_and_schedules_come_from_dbos_tables(dbos_source) -> None:
    web = user("viewer")
    queues = page(web, "/queues/", dbos_source)
    assert "limited" in queues and "at most 3 at once" in queues and "2 per worker" in queues
    assert "parked" in queues
    schedules = page(web, "/schedules/", dbos_source)
    assert "nightly" in schedules and "03:00" in schedules


def test_no_false_stuck_or_stranded_alarm_without_executors(dbos_source) -> None:
    web = user("viewer")
    assert "Liveness is unknown" in page(web, "/versions/", dbos_source).replace(
        "Executor liveness is unknown", "Liveness is unknown"
    )
    assert "pinned to this version, and no live executor" not in page(
        web, "/versions/", dbos_source
    )
    assert "sleeping-1" not in page(web, "/", dbos_source)  # PENDING, yet not called stuck


def test_unknown_source_and_unreadable_schema_are_refused_clearly(dbos_source) -> None:
    web = user("viewer")
    assert "no source named" in page(web, "/workflows/", "nope", code=400)
    listed = [{"name": "empty", "kind": "dbos", "url": PG_URL, "schema": "no_such_schema_x"}]
    with override_settings(WAYMARK_SOURCES=sources.parse(json.dumps(listed))):
        html = page(web, "/workflows/", "empty", code=409)
        assert "no DBOS system tables in schema" in html
        connections[sources.named("empty").alias].close()


@pytest.mark.parametrize("version", [999, 100])
def test_a_dbos_schema_version_this_console_does_not_read_is_refused(tmp_path, version) -> None:
    path = tmp_path / "future.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE dbos_migrations (version BIGINT PRIMARY KEY)")
        conn.execute("INSERT INTO dbos_migrations VALUES (?)", (version,))
    name = f"future-{version}-{uuid.uuid4().hex[:8]}"  # a source's alias is made once per name
    listed = [{"name": name, "kind": "dbos", "url": f"sqlite:///{path}", "schema": "dbos"}]
    with override_settings(WAYMARK_SOURCES=sources.parse(json.dumps(listed))):
        html = page(user("viewer"), "/workflows/", name, code=409)
        assert f"DBOS schema version {version} is not one this console reads (109-125)" in html
        connections[f"source_{name}"].close()
    with sqlite3.connect(path) as conn:  # nothing was created or written there
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
        assert [t for (t,) in tables if not t.startswith("sqlite_")] == ["dbos_migrations"]


def test_sources_setting_is_validated() -> None:
    assert sources.parse("") == []
    for bad in ("{", "{}", '[{"name": "x"}]', '[{"name": "a b", "kind": "dbos", "url": "u"}]',
                '[{"name": "x", "kind": "other", "url": "u"}]',
                '[{"name": "x", "kind": "dbos", "url": "u", "schema": "a;b"}]'):  # fmt: skip
        with pytest.raises(RuntimeError, match="WAYMARK_SOURCES"):
            sources.parse(bad)


def test_streams_show_on_the_page_decoded_by_their_serialization(dbos_source) -> None:
    web = user("viewer")
    reporter = page(web, "/workflows/reporter-1/", dbos_source)
    assert (
        f'href="/workflows/reporter-1/stream/?key=rows&source={dbos_source}">rows (3, closed)'
        in reporter
    )
    rows = page(web, "/workflows/reporter-1/stream/", dbos_source, key="rows")
    assert "Closed: every value is below." in rows and "hx-get" not in rows
    assert "&quot;row&quot;:2" in rows and '<li value="2">' in rows
    assert "&lt;b&gt;bold&lt;/b&gt;" in rows and "<b>bold</b>" not in rows
    assert "__DBOS_STREAM_CLOSED__" not in rows and '<li value="3">' not in rows

    ticking = page(web, "/workflows/ticking-1/", dbos_source)
    assert "ticks (2, open)" in ticking
    ticks = page(web, "/workflows/ticking-1/stream/", dbos_source, key="ticks")
    assert "Open: new values appear as the workflow writes them." in ticks
    assert ticks.count("pickled Python object") == 2 and "tick 0" not in ticks
    assert f"from=2&amp;source={dbos_source}" in ticks  # follows from the next offset
    polled = page(web, "/workflows/ticking-1/stream/", dbos_source, key="ticks", **{"from": "2"})
    assert "<pre>" not in polled and "from=2" in polled
    with override_settings(WAYMARK_DECODE_PICKLES=True):
        decoded = page(web, "/workflows/ticking-1/stream/", dbos_source, key="ticks")
        assert "tick 0" in decoded and "{&#x27;tick&#x27;: 1}" in decoded

    chatty = page(web, "/workflows/chatty-1/stream/", dbos_source, key="log")
    assert "Not closed, but the workflow is SUCCESS" in chatty and "hx-get" not in chatty


def test_the_event_history_lists_every_set_event_with_its_step(dbos_source) -> None:
    web = user("viewer")
    reporter = page(web, "/workflows/reporter-1/", dbos_source)
    history = reporter[reporter.index('id="event-history"') :]
    history = history[: history.index("</ol>")]
    entries = [
        ("step 1", "phase", "{&quot;row&quot;: 0}"),
        ("step 3", "phase", "{&quot;row&quot;: 1}"),
        ("step 5", "phase", "{&quot;row&quot;: 2}"),
        ("step 7", "done", "true"),
    ]
    at = [
        history.index(f"{step}</span> <b>{key}</b> = <code>{value}</code>")
        for step, key, value in entries
    ]
    assert at == sorted(at) and 'Event history <span class="muted">(4)' in reporter
    chatty = page(web, "/workflows/chatty-1/", dbos_source)
    assert chatty.count("pickled Python object") >= 2
    assert 'Event history <span class="muted">(2)' in chatty
    with override_settings(WAYMARK_DECODE_PICKLES=True):
        decoded = page(web, "/workflows/chatty-1/", dbos_source)
        history = decoded[decoded.index('id="event-history"') :]
        assert history.index("&#x27;pct&#x27;: 50") < history.index("&#x27;pct&#x27;: 100")
    assert "No event was set." in page(web, "/workflows/ok-1/", dbos_source)


# What a fork writes, table by table, without the IDs and times that differ between forks.
FORK_ROWS = {
    "workflow_status": "SELECT status, name, class_name, config_name, application_version,"
    " application_id, authenticated_user, authenticated_roles, assumed_role, serialization,"
    " queue_name, forked_from, attributes, application_name, priority, recovery_attempts,"
    " was_forked_from, queue_partition_key, workflow_timeout_ms, parent_workflow_id,"
    " deduplication_id FROM workflow_status WHERE workflow_uuid = %s",
    "workflow_input": "SELECT inputs FROM workflow_input WHERE workflow_uuid = %s",
    "operation_outputs": "SELECT function_id, function_name, output, error, child_workflow_id,"
    " started_at_epoch_ms, completed_at_epoch_ms, serialization, application_name"
    " FROM operation_outputs WHERE workflow_uuid = %s ORDER BY function_id",
    "workflow_events_history": "SELECT function_id, key, value, serialization"
    " FROM workflow_events_history WHERE workflow_uuid = %s ORDER BY function_id, key",
    "workflow_events": "SELECT key, value, serialization FROM workflow_events"
    " WHERE workflow_uuid = %s ORDER BY key",
    "streams": 'SELECT key, "offset", function_id, value, serialization FROM streams'
    ' WHERE workflow_uuid = %s ORDER BY key, "offset"',
}


def _query(listed: dict[str, str], sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows of the DBOS database itself (never the console's temporary views)."""
    if listed["url"].startswith("sqlite"):
        with sqlite3.connect(listed["url"].removeprefix("sqlite:///")) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("%s", "?"), params)]
    return _pg(listed["schema"], sql, *params)


@pytest.mark.parametrize(("original", "step"), [("reporter-1", 4), ("chatty-1", 6), ("ok-1", 1)])
def test_a_fork_writes_what_dbos_pys_own_fork_writes(dbos_db, dbos_source, original, step) -> None:
    """The console's fork and DBOSClient.fork_workflow, from the same step onto the same
    version, write the same rows: status, input, steps, event history, events and streams."""
    from dbos import DBOSClient

    listed = dbos_db[0]
    web = user("operator")
    response = web.post(f"/workflows/{original}/fork/?source={dbos_source}", {"step": str(step)})
    assert response.status_code == 302, response.content[:2000]
    ours = response["Location"].split("/")[2]
    schema = (
        {"dbos_system_schema": listed["schema"]} if listed["url"].startswith("postgres") else {}
    )
    client = DBOSClient(system_database_url=listed["url"], **schema)
    try:
        theirs = client.fork_workflow(original, step, application_version="v1").workflow_id
    finally:
        client.destroy()
    for table, sql in FORK_ROWS.items():
        assert _query(listed, sql, ours) == _query(listed, sql, theirs), table
    copied = {t: _query(listed, sql, ours) for t, sql in FORK_ROWS.items()}
    assert copied["workflow_status"][0][0] == "ENQUEUED" and copied["workflow_input"]
    assert len(copied["operation_outputs"]) == step - 1
    if original == "reporter-1":  # two phases set, one row written before step 4
        assert [r[:2] for r in copied["workflow_events_history"]] == [(1, "phase"), (3, "phase")]
        [(key, value, fmt)] = copied["workflow_events"]
        assert (key, json.loads(str(value)), fmt) == ("phase", {"row": 1}, "portable_json")
        assert [r[:3] for r in copied["streams"]] == [("rows", 0, 2)]
        fork_page = page(web, f"/workflows/{ours}/stream/", dbos_source, key="rows")
        assert "&quot;row&quot;:0" in fork_page and "Open: new values" in fork_page
    if original == "chatty-1":
        assert [r[:3] for r in copied["streams"]] == [("log", 0, 4), ("log", 1, 5)]
        assert len(copied["workflow_events_history"]) == 1
    assert _query(listed, "SELECT was_forked_from FROM workflow_status WHERE workflow_uuid = %s",
                  original)[0][0] in (True, 1)  # fmt: skip


def test_step_names_mapped_for_dbos_are_the_engines() -> None:
    """The views map DBOS step names onto names the engine defines (one place per fact)."""
    from engine import operations

    for dialect in ("postgres", "sqlite"):
        text = (ROOT / "console" / "sql" / f"dbos_views_{dialect}.sql").read_text()
        named = set(re.findall(r"'(waymark\.[a-z_.]+)'", text))
        assert named and named <= operations.ALL, named - operations.ALL


def test_the_stream_close_marker_is_dbos_pys() -> None:
    from dbos._sys_db import _dbos_stream_closed_sentinel, _serialized_stream_closed_sentinel

    text = (ROOT / "console" / "sql" / "dbos_views_postgres.sql").read_text()
    marker = f"serialization = 'portable_json' AND value = '{_serialized_stream_closed_sentinel}'"
    assert marker in text and _dbos_stream_closed_sentinel in marker


def _pg(schema: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        return list(conn.execute(sql, params).fetchall())


def test_a_dbos_process_honours_cancel_resume_and_fork_from_the_console(tmp_path) -> None:
    """The real DBOS app serves gated-1 (a step, an event, a stream value, wait for "go", the
    event again, another value, a step, the stream closed). The console follows its stream
    live, cancels it while it waits, resumes it, then forks it from step 6: DBOS runs both,
    and the fork's events and stream continue from the copied ones."""
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    from dbos import DBOSClient

    from console.models import AuditRecord
    from tests.support import wait_until

    schema = f"dbos_e_{uuid.uuid4().hex[:10]}"
    name = f"dbos-{schema[7:]}"
    log = tmp_path / "serve.log"
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.apps.dbosapp", "serve", PG_URL, schema],
        cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    listed = [{"name": name, "kind": "dbos", "url": PG_URL, "schema": schema}]
    client = None
    try:
        wait_until(lambda: b"ready" in log.read_bytes() or proc.poll() is not None, 180, "ready")
        assert proc.poll() is None, log.read_text()[-4000:]
        # waiting in recv: its timeout's sleep (step 5) is recorded when the wait starts
        wait_until(
            lambda: _pg(schema, "SELECT 1 FROM operation_outputs WHERE workflow_uuid = %s"
                        " AND function_id = 5", "gated-1"),
            120, "gated-1 waiting for go",
        )  # fmt: skip
        web = user("operator")
        with override_settings(
            WAYMARK_SOURCES=sources.parse(json.dumps(listed)), WAYMARK_DECODE_PICKLES=True
        ):
            stream = page(web, "/workflows/gated-1/stream/", name, key="out")
            assert "Open: new values appear" in stream and "g-a" in stream
            assert "g-b" not in stream and "from=1&amp;" in stream
            polled = page(web, "/workflows/gated-1/stream/", name, key="out", **{"from": "1"})
            assert "<pre>" not in polled and "from=1&amp;" in polled  # still following
            history = page(web, "/workflows/gated-1/", name)
            assert "step 2</span> <b>stage</b>" in history

            response = web.post(f"/workflows/gated-1/cancel/?source={name}", {"reason": "e2e"})
            assert response.status_code == 302 and f"source={name}" in response["Location"]
            row = _pg(schema, "SELECT status, queue_name, deduplication_id FROM workflow_status"
                      " WHERE workflow_uuid = %s", "gated-1")  # fmt: skip
            assert row == [("CANCELLED", None, None)]
            record = AuditRecord.objects.filter(action="cancel").order_by("-id").first()
            assert record and record.ok and record.filter == f"source={name}&cancel_children=1"
            assert record.status_before == {"gated-1": "PENDING"}
            assert record.status_after == {"gated-1": "CANCELLED"}

            client = DBOSClient(system_database_url=PG_URL, dbos_system_schema=schema)
            client.send("gated-1", "now", topic="go")
            # the cancelled workflow does not take its next step while cancelled
            assert _pg(schema, "SELECT status FROM workflow_status WHERE workflow_uuid = %s",
                       "gated-1") == [("CANCELLED",)]  # fmt: skip

            web.post(f"/workflows/gated-1/resume/?source={name}", {"reason": "e2e"})
            wait_until(
                lambda: _pg(schema, "SELECT status FROM workflow_status WHERE workflow_uuid"
                            " = %s", "gated-1") == [("SUCCESS",)],
                180, "gated-1 resumed to SUCCESS",
            )  # fmt: skip
            assert client.retrieve_workflow("gated-1").get_result() == (
                "g-a done; g-b done; go=now"
            )
            resumed = AuditRecord.objects.filter(action="resume").order_by("-id").first()
            assert resumed and resumed.ok and resumed.outcome == "resumed"
            # the poll from offset 1 now gets the value the resumed workflow wrote, and stops
            polled = page(web, "/workflows/gated-1/stream/", name, key="out", **{"from": "1"})
            assert '<li value="1"><pre>' in polled and "g-b" in polled and "hx-get" not in polled

            forked = web.post(f"/workflows/gated-1/fork/?source={name}", {"step": "6"})
            assert forked.status_code == 302, forked.content[:2000]
            new_id = forked["Location"].split("/")[2]
            assert new_id != "gated-1"
            wait_until(
                lambda: _pg(schema, "SELECT status FROM workflow_status WHERE workflow_uuid"
                            " = %s", new_id) == [("SUCCESS",)],
                180, "the fork to SUCCESS",
            )  # fmt: skip
            assert client.retrieve_workflow(new_id).get_result() == "g-a done; g-b done; go=now"
            # steps 1-5 copied (the recv's "now" with them), 6-9 run by the fork: its event
            # history, latest events and stream are the original's, offsets included
            for table in ("operation_outputs", "workflow_events_history", "workflow_events",
                          "streams"):  # fmt: skip
                sql = FORK_ROWS[table].replace(", started_at_epoch_ms, completed_at_epoch_ms", "")
                assert _pg(schema, sql, new_id) == _pg(schema, sql, "gated-1"), table
            copied = _pg(schema, FORK_ROWS["operation_outputs"], new_id)[:5]
            assert copied == _pg(schema, FORK_ROWS["operation_outputs"], "gated-1")[:5]
            assert list(client.read_stream(new_id, "out")) == ["g-a", "g-b"]
            assert client.get_event(new_id, "stage", timeout_seconds=5) == "b"
            assert _pg(schema, "SELECT forked_from FROM workflow_status WHERE workflow_uuid = %s",
                       new_id) == [("gated-1",)]  # fmt: skip
            assert _pg(schema, "SELECT was_forked_from FROM workflow_status WHERE"
                       " workflow_uuid = %s", "gated-1") == [(True,)]  # fmt: skip
            page_html = web.get(f"/workflows/{new_id}/", {"source": name}).content.decode()
            assert "gated-1" in page_html and 'Event history <span class="muted">(2)' in page_html
            # a failed action is audited too
            web.post(f"/workflows/{new_id}/cancel/?source={name}", {"reason": "late"})
            late = AuditRecord.objects.filter(action="cancel").order_by("-id").first()
            assert late and late.ok is False and "SUCCESS" in late.outcome
            connections[sources.named(name).alias].close()
    finally:
        if client is not None:
            client.destroy()
        proc.kill()
        proc.wait()
        out.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_everything_but_cancel_resume_and_fork_is_refused_on_a_dbos_source(dbos_source) -> None:
    """Queue control, delete and a fork with a new input have no DBOS protocol here: refused
    clearly, audited, nothing written (and never applied to the engine's own database)."""
    from console import actions
    from console.models import AuditRecord

    own = actions.client()  # the engine's own database: none of its queues is the source's
    own.start_workflow("own.job", queue="own-only", workflow_id=f"own-{uuid.uuid4().hex}")
    own.pause_queue("own-only")
    operator = user("operator")
    queues = page(operator, "/queues/", dbos_source)
    assert "own-only" not in queues
    assert "<th>Control</th>" not in queues and "/queues/parked/pause/" not in queues
    response = operator.post(f"/queues/parked/pause/?source={dbos_source}", {"reason": "no"})
    assert response.status_code == 302
    record = AuditRecord.objects.filter(action="queue_pause").order_by("-id").first()
    assert record and record.ok is False and "not offered on a DBOS source" in record.outcome
    assert record.status_after == {"queue:parked": "a DBOS queue (set in the application's code)"}
    assert not any(q.name == "parked" and q.paused for q in actions.client().list_queues())

    admin = user("admin")
    finished = page(admin, "/workflows/ok-1/", dbos_source)
    assert "/workflows/ok-1/delete/" not in finished
    admin.post(f"/workflows/ok-1/delete/?source={dbos_source}", {"reason": "no"})
    deleted = AuditRecord.objects.filter(action="delete").order_by("-id").first()
    assert deleted and deleted.ok is False and "not offered on a DBOS source" in deleted.outcome
    assert "ok-1" in page(admin, "/workflows/", dbos_source)

    confirm = page(operator, "/workflows/portable-1/fork/", dbos_source)
    assert 'name="input"' not in confirm and "dbos-py&#x27;s fork takes no new input" in confirm
    before = AuditRecord.objects.count()
    edited = {"positionalArgs": ["zed"], "namedArgs": {}}
    refused = operator.post(
        f"/workflows/portable-1/fork/?source={dbos_source}",
        {"step": "1", "input": json.dumps(edited)},
    )
    assert refused.status_code == 400 and b"keeps the original input" in refused.content
    assert AuditRecord.objects.count() == before  # refused before anything was recorded


def test_a_cancel_with_its_children_walks_parent_workflow_id_as_dbos_does(
    dbos_db, dbos_source
) -> None:
    from console.models import AuditRecord

    status = "SELECT workflow_uuid, status, queue_name FROM workflow_status"
    tree = status + " WHERE workflow_uuid IN ('family-1', 'family-1-1') ORDER BY 1"
    assert [r[1] for r in _query(dbos_db[0], tree)] == ["PENDING", "PENDING"]
    web = user("operator")
    confirm = page(web, "/workflows/family-1/cancel/", dbos_source)
    assert 'name="cancel_children"' in confirm
    web.post(f"/workflows/family-1/cancel/?source={dbos_source}", {"cancel_children": "1"})
    assert _query(dbos_db[0], tree) == [
        ("family-1", "CANCELLED", None),
        ("family-1-1", "CANCELLED", None),
    ]
    record = AuditRecord.objects.filter(action="cancel").order_by("-id").first()
    assert record and record.ok and "with 1 unfinished descendant" in record.outcome
    assert record.filter == f"source={dbos_source}&cancel_children=1"


def test_metrics_read_the_dbos_source_without_a_liveness_alarm(dbos_db, dbos_source) -> None:
    admin = user("admin")
    text = page(admin, "/metrics", dbos_source)
    pending = _query(dbos_db[0], "SELECT count(*) FROM workflow_status WHERE status = 'PENDING'")
    assert f'waymark_workflows{{status="PENDING"}} {float(pending[0][0])}' in text
    assert 'waymark_queue_enqueued{queue="parked"} 1.0' in text
    # no heartbeats to judge by: the stuck and stranded gauges have no sample at all
    assert "\nwaymark_workflows_stuck " not in text and "\nwaymark_workflows_stranded " not in text


def test_export_is_refused_on_a_dbos_source(dbos_source) -> None:
    from console.models import AuditRecord

    operator = user("operator")
    assert "Export JSON" not in page(operator, "/workflows/ok-1/", dbos_source)
    response = operator.get("/workflows/ok-1/export.json", {"source": dbos_source})
    assert response.status_code == 404 and b"not offered on a DBOS source" in response.content
    record = AuditRecord.objects.filter(action="export").order_by("-id").first()
    assert record and record.ok is False and record.filter == f"source={dbos_source}"


def test_bulk_actions_are_refused_and_audited_on_a_dbos_source(dbos_source) -> None:
    from console import actions
    from console.models import AuditRecord

    token = sources.activate(sources.named(dbos_source))
    try:
        record = bulk_request.request(actions.Actor("bulk-tester"), "cancel", ["sleeping-1"], "no")
    finally:
        sources.deactivate(token)
    record = AuditRecord.objects.get(pk=record.pk)
    assert record.ok is False and "Waymark's own database only" in record.outcome
    assert record.status_before == {"sleeping-1": "PENDING"}
    web = user("viewer")
    assert "PENDING" in page(web, "/workflows/sleeping-1/", dbos_source)
