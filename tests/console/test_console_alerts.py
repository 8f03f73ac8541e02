"""Alerts end to end (both engine databases): rules read the system tables, state changes
notify once through a durable workflow, a webhook receiver on loopback that fails and then
recovers gets each notification once, signed; reminders; e-mail; exactly one evaluator."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from django.core import mail
from django.db import connections
from django.test import override_settings
from django.utils import timezone

import tests.console.console_site as site
from console.alerts import evaluator, lease, notify, rules
from console.alerts.models import AlertEvent, AlertRule, AlertState, Lease
from engine import Client, WorkflowFailedError
from tests.support import wait_until

SECRET_ENV = "WAYMARK_TEST_ALERT_SECRET"
SECRET = "s3cret-signing-key"


class Receiver:
    """A webhook receiver on 127.0.0.1 (a free port) that fails its first ``failures``
    requests with a 500, then accepts; it records every request."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[int, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = 500 if receiver.failures > 0 else 200
                    receiver.failures -= 1
                    receiver.requests.append((status, dict(self.headers), payload))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict]:
        with self.lock:
            return [json.loads(body) for status, _, body in self.requests if status == 200]

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(headers, body) for status, headers, body in self.requests if status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def clean_alerts() -> Iterator[None]:
    """The console database is shared by the tests of one process: no rule, event or lease
    of another test may be evaluated here."""

    def wipe() -> None:
        AlertEvent.objects.all().delete()
        AlertState.objects.all().delete()
        AlertRule.objects.all().delete()
        Lease.objects.all().delete()

    wipe()
    yield
    wipe()


@pytest.fixture
def shop(make_engine, db, clean_alerts, monkeypatch):
    """A launched engine that runs the notification workflow (retrying fast) and a workflow
    that fails; the console aimed at its database."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    engine = make_engine("alerts-app", application_version="v-shop")
    notify.register(engine, attempts=5, interval_seconds=0.05, backoff_rate=1.5)

    @engine.workflow(name="shop.refund")
    def refund(ctx, order):
        raise ValueError(f"refund refused for {order}")

    @engine.workflow(name="shop.ok")
    def ok(ctx):
        return "fine"

    engine.launch()
    site.point_engine_database(db)
    yield engine
    connections["waymark"].close()


@pytest.fixture
def client(db) -> Iterator[Client]:
    with Client(db.url, schema=db.schema) as made:
        yield made


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(failures=2)
    yield made
    made.close()


def fail(engine, n: int = 1) -> None:
    for i in range(n):
        with pytest.raises(WorkflowFailedError):
            engine.start_workflow("shop.refund", i).get_result(timeout=10)


def rule(**fields: object) -> AlertRule:
    defaults: dict[str, object] = {
        "name": f"refunds failing {uuid.uuid4().hex[:6]}",
        "kind": "failures",
        "target": "shop.refund",
        "threshold": 0,
        "window_seconds": 3600,
        "destination": "http://127.0.0.1:9/unused",
    }
    return AlertRule.objects.create(**{**defaults, **fields})


def notifications(client: Client) -> list:
    return client.list_workflows(name=notify.WORKFLOW, limit=100)


def test_a_failing_receiver_gets_each_notification_once_signed(shop, client, receiver, db) -> None:
    watched = rule(destination=receiver.url, secret_env=SECRET_ENV)
    loop = evaluator.Evaluator("worker-1", client, interval=1.0, application_version="v-shop")
    assert loop.run_once()  # nothing failed yet: quiet
    assert not AlertEvent.objects.exists()
    assert AlertState.objects.get(rule=watched).summary.startswith("0 shop.refund")

    fail(shop, 2)
    assert loop.run_once()
    event = AlertEvent.objects.get()
    assert (event.kind, event.value, event.dispatched) == ("firing", 2.0, True)
    assert event.notification_id == f"alert-{watched.uid}-1-firing"
    wait_until(lambda: receiver.delivered(), what="the firing notification")
    assert len(receiver.requests) == 3  # two 500s, retried with backoff, then accepted
    handle = client.retrieve_workflow(event.notification_id)
    assert handle.get_result(timeout=10) == {"sent": True, "status": 200}
    assert handle.get_status().application_version == "v-shop"  # run by a worker that has it

    headers, body = receiver.accepted()[0]
    sent = json.loads(body)
    assert sent["text"].startswith(f"[FIRING] {watched.name}: 2 shop.refund workflows failed")
    assert (sent["event"], sent["firing"], sent["value"]) == ("firing", True, 2.0)
    assert headers["X-Waymark-Delivery"] == event.notification_id
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Waymark-Signature"], expected)
    # The workflow's input names the event, never the URL (a secret, for Slack) or the key.
    stored = db.raw(
        "SELECT inputs FROM workflow_status WHERE workflow_uuid = %s", (event.notification_id,)
    )[0][0]
    assert receiver.url not in stored and SECRET not in stored

    assert loop.run_once()  # still firing: no new event, no new notification
    assert AlertEvent.objects.count() == 1 and len(notifications(client)) == 1

    AlertRule.objects.filter(pk=watched.pk).update(threshold=5)  # 2 failures <= 5: resolved
    assert loop.run_once()
    resolved = AlertEvent.objects.filter(kind="resolved").get()
    wait_until(lambda: len(receiver.delivered()) == 2, what="the resolved notification")
    assert receiver.delivered()[1]["text"].startswith(f"[RESOLVED] {watched.name}")
    assert resolved.notification_id == f"alert-{watched.uid}-2-resolved"
    assert len(notifications(client)) == 2


def test_a_crash_before_dispatch_loses_nothing_and_duplicates_nothing(
    shop, client, receiver
) -> None:
    receiver.failures = 0
    watched = rule(destination=receiver.url)
    fail(shop)
    # A worker records the state change and dies before starting the notification.
    first = evaluator.Evaluator("worker-1", client, interval=1.0)
    reading = rules.evaluate(watched, rules.Context())
    event = first.record(watched, reading)
    assert event is not None and not event.dispatched
    # The next pass (another worker, once the lease is free) starts it.
    lease.release(evaluator.LEASE, "worker-1")
    assert evaluator.Evaluator("worker-2", client, interval=1.0).run_once()
    wait_until(lambda: receiver.delivered(), what="the notification after the crash")
    # Crash after the start but before "dispatched" was written: started again, same ID.
    AlertEvent.objects.filter(pk=event.pk).update(dispatched=False)
    assert evaluator.Evaluator("worker-2", client, interval=1.0).dispatch() == 1
    assert len(notifications(client)) == 1
    assert client.retrieve_workflow(event.notification_id).get_result(timeout=10)["sent"]
    assert len(receiver.delivered()) == 1


def test_reminders_while_firing(shop, client, receiver) -> None:
    receiver.failures = 0
    watched = rule(destination=receiver.url, reminder_minutes=10)
    clock = [timezone.now()]
    loop = evaluator.Evaluator("worker-1", client, interval=1.0, now=lambda: clock[0])
    fail(shop)
    loop.run_once()
    loop.run_once()  # not yet due
    clock[0] += dt.timedelta(minutes=10)
    loop.run_once()
    clock[0] += dt.timedelta(minutes=5)
    loop.run_once()  # 5 minutes after the reminder: not due
    clock[0] += dt.timedelta(minutes=5)
    loop.run_once()
    kinds = list(AlertEvent.objects.order_by("pk").values_list("kind", "notification_id"))
    assert kinds == [
        ("firing", f"alert-{watched.uid}-1-firing"),
        ("reminder", f"alert-{watched.uid}-1-reminder-1"),
        ("reminder", f"alert-{watched.uid}-1-reminder-2"),
    ]
    wait_until(lambda: len(receiver.delivered()) == 3, what="the firing and two reminders")
    assert [d["text"].split("]")[0] for d in receiver.delivered()].count("[STILL FIRING") == 2


@override_settings(WAYMARK_CONSOLE_URL="https://console.example.com/")
def test_email_notifications(shop, client) -> None:
    mail.outbox.clear()
    watched = rule(channel="email", destination="ops@example.com, oncall@example.com")
    fail(shop)
    evaluator.Evaluator("worker-1", client, interval=1.0).run_once()
    wait_until(lambda: mail.outbox, what="the alert e-mail")
    assert "https://console.example.com/alerts/" in mail.outbox[0].body
    message = mail.outbox[0]
    assert message.to == ["ops@example.com", "oncall@example.com"]
    assert message.subject.startswith(f"[FIRING] {watched.name}")
    assert "shop.refund workflows failed" in message.body


def test_a_missing_signing_secret_fails_the_notification_without_sending(
    shop, client, receiver, monkeypatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    rule(destination=receiver.url, secret_env=SECRET_ENV)
    fail(shop)
    evaluator.Evaluator("worker-1", client, interval=1.0).run_once()
    event = AlertEvent.objects.get()
    with pytest.raises(WorkflowFailedError) as failed:
        client.retrieve_workflow(event.notification_id).get_result(timeout=30)
    assert SECRET_ENV in failed.value.error_message
    assert receiver.requests == []  # never sent unsigned


def test_every_kind_of_rule_reads_the_system_tables(shop, client, db) -> None:
    now = timezone.now()
    old = int((now - dt.timedelta(hours=2)).timestamp() * 1000)
    client.start_workflow("shop.ok", queue="slow", workflow_id="waiting-long")
    db.raw(
        "UPDATE workflow_status SET created_at = %s WHERE workflow_uuid = 'waiting-long'", (old,)
    )
    db.raw(
        "INSERT INTO workflow_status (workflow_uuid, status, name, executor_id, "
        "application_version, created_at, updated_at, recovery_attempts, priority, "
        "serialization) VALUES ('stuck-1', 'PENDING', 'shop.ok', 'gone', 'v-gone', %s, %s, 0, "
        "0, 'portable_json')",
        (old, old),
    )
    fail(shop)
    shop.start_workflow("shop.ok").get_result(timeout=10)
    ctx = rules.Context()
    cases = {
        ("failures", "shop.refund", 0, False): (1, True),
        ("failures", "shop.refund", 60, True): (100, True),  # 1 of 1 finished failed
        ("failures", "shop.ok", 0, True): (0, False),
        ("queue_age", "slow", 3600, False): (7200, True),
        ("queue_age", "empty", 0, False): (0, False),
        ("stranded", "", 0, False): (1, True),
        ("no_executor", "v-shop", 0, False): (1, False),
        ("no_executor", "v-gone", 0, False): (0, True),
        ("pending_too_long", "", 0, False): (1, True),
        ("pending_too_long", "shop.refund", 0, False): (0, False),
        ("schedule_missed", "", 60, False): (0, False),
    }
    for (kind, target, threshold, rate), (value, firing) in cases.items():
        made = AlertRule(kind=kind, target=target, threshold=threshold, rate=rate)
        reading = rules.evaluate(made, ctx)
        assert reading.firing == firing, (kind, target, reading)
        assert reading.value == pytest.approx(value, abs=5), (kind, target, reading)


def test_two_evaluators_racing_record_each_change_once(shop, client, receiver) -> None:
    receiver.failures = 0
    rule(destination=receiver.url)
    fail(shop)
    # A 30 s lease (3 intervals): the holder keeps it through every pass, however slow the
    # machine, so "one evaluator did every pass" is exact.
    loops = [evaluator.Evaluator(f"worker-{i}", client, interval=10.0) for i in (1, 2)]
    start = threading.Barrier(2)
    held: dict[str, int] = {"worker-1": 0, "worker-2": 0}

    def race(loop: evaluator.Evaluator) -> None:
        start.wait()
        for _ in range(10):
            if loop.run_once():
                held[loop.holder] += 1
        connections.close_all()

    threads = [threading.Thread(target=race, args=(loop,)) for loop in loops]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(held.values()) == [0, 10]  # one evaluator did every pass
    assert AlertEvent.objects.count() == 1
    wait_until(lambda: receiver.delivered(), what="the notification")
    assert len(notifications(client)) == 1

    # Without the lease (a holder paused past its expiry, still mid-pass): the state change
    # is a compare-and-set, so two evaluators recording it at once make one event.
    AlertRule.objects.update(threshold=5)
    reading = rules.evaluate(AlertRule.objects.get(), rules.Context())
    made: list[object] = []

    def record(loop: evaluator.Evaluator) -> None:
        start.wait()
        made.append(loop.record(AlertRule.objects.get(), reading))
        connections.close_all()

    threads = [threading.Thread(target=record, args=(loop,)) for loop in loops]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for m in made if m is not None) == 1
    assert AlertEvent.objects.filter(kind="resolved").count() == 1


@pytest.fixture(params=["sqlite", "postgres"])
def console_db(request, clean_alerts) -> Iterator[str]:
    """The lease's table on the console database: the test's SQLite one, or a Postgres schema
    made for this test (the console database may be either in production)."""
    if request.param == "sqlite":
        yield "default"
        return
    import psycopg

    from console.dburl import database_config
    from tests.conftest import PG_URL, require_postgres

    require_postgres()
    schema = f"c_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
    config = {**database_config(PG_URL), "OPTIONS": {"options": f"-c search_path={schema}"}}
    connections.settings["console_pg"] = {
        **connections.settings["default"],
        **config,
        "TEST": {},
        "ATOMIC_REQUESTS": False,
    }
    with connections["console_pg"].schema_editor() as editor:
        editor.create_model(Lease)
    try:
        yield "console_pg"
    finally:
        connections["console_pg"].close()
        del connections["console_pg"]
        del connections.settings["console_pg"]
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())


def test_one_lease_holder_however_many_race_for_it(console_db) -> None:
    contenders, rounds = 4, 15
    start, done = threading.Barrier(contenders), threading.Barrier(contenders)
    winners: list[list[str]] = [[] for _ in range(rounds)]
    renewed: list[bool] = []

    def contend(me: str) -> None:
        try:
            for n in range(rounds):
                start.wait()
                if lease.acquire("race", me, 30, using=console_db):
                    winners[n].append(me)
                done.wait()
                if me in winners[n]:
                    renewed.append(lease.acquire("race", me, 30, using=console_db))
                    lease.release("race", me, using=console_db)
        finally:
            connections[console_db].close()

    threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [len(w) for w in winners] == [1] * rounds  # exactly one holder, every round
    assert renewed == [True] * rounds  # and the holder renews it
    assert lease.holder("race", using=console_db) is None  # released


def test_an_expired_lease_passes_to_the_next_worker(console_db) -> None:
    assert lease.acquire("expiring", "w1", 2, using=console_db)
    assert not lease.acquire("expiring", "w2", 2, using=console_db)  # held for 2 s
    wait_until(
        lambda: lease.acquire("expiring", "w2", 30, using=console_db),
        what="the lease to expire and pass on",
    )
    assert lease.holder("expiring", using=console_db) == "w2"
    assert not lease.acquire("expiring", "w1", 30, using=console_db)


@pytest.mark.slow
def test_runworkers_evaluate_and_notify_once(db, tmp_path) -> None:
    """Two real runworkers: one holds the lease, the notification (a durable workflow run by
    either of them) reaches a receiver that failed once, once."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'console.db'}",
        "WAYMARK_DATABASE_URL": db.url,
        "WAYMARK_SCHEMA": db.schema,
        "WAYMARK_APP": "tests.apps.workerapp:build",
        "WAYMARK_APP_NAME": "workerapp",
        "WAYMARK_TEST_LEDGER": str(tmp_path / "ledger.txt"),
        "WAYMARK_TEST_SCHEDULE": "0 0 1 1 *",
        "WAYMARK_ALERT_INTERVAL": "0.2",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=root, env=env, check=True)
    hook = Receiver(failures=1)
    create = (
        "from console.alerts.models import AlertRule; AlertRule.objects.create(name='no v9', "
        f"kind='no_executor', target='v9', destination={hook.url!r})"
    )
    subprocess.run([*manage, "shell", "-c", create], cwd=root, env=env, check=True)
    procs = [
        subprocess.Popen(
            [*manage, "runworker", "--executor-id", f"alerting-{i}"],
            cwd=root,
            env=env,
            stdout=(tmp_path / f"w{i}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for i in (1, 2)
    ]
    try:
        wait_until(lambda: hook.delivered(), limit=60, what="the notification from runworker")
        sent = hook.delivered()[0]
        assert sent["text"].startswith("[FIRING] no v9: 0 live executors run")
        with Client(db.url, schema=db.schema) as engine_client:
            done = engine_client.retrieve_workflow(sent["notification_id"])
            assert done.get_result(timeout=30)["sent"]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        hook.close()
    logs = [(tmp_path / f"w{i}.log").read_text() for i in (1, 2)]
    assert sum(log.count("action=alerts.firing") for log in logs) == 1, logs
    assert len(hook.delivered()) == 1
    assert [p.returncode for p in procs] == [0, 0], logs
