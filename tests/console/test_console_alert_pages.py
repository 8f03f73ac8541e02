"""/alerts/ pages: everyone signed in reads, admins edit (audited, intent then outcome), the
overview shows firing alerts; escaping, CSP and secrets kept out of sight."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client as WebClient
from django.utils import timezone

import tests.console.console_site as site
from console.alerts.models import AlertEvent, AlertRule, AlertState, Lease
from console.models import AuditRecord
from engine import Client
from tests.console.test_console_security import inline_code

XSS = "<script>alert('x')</script>"
HOOK = "https://hooks.example.com/services/T000/B000/very-secret-path"


@pytest.fixture
def pages(db, clean_console) -> Iterator[None]:
    with Client(db.url, schema=db.schema) as client:
        client.list_workflows(limit=1)  # the system tables exist (the overview reads them)
    site.point_engine_database(db)
    yield
    connections["waymark"].close()


@pytest.fixture
def clean_console() -> Iterator[None]:
    def wipe() -> None:
        AlertEvent.objects.all().delete()
        AlertState.objects.all().delete()
        AlertRule.objects.all().delete()
        Lease.objects.all().delete()

    wipe()
    yield
    wipe()


def signed_in(name: str, role: str | None) -> WebClient:
    user, _ = get_user_model().objects.get_or_create(username=name)
    user.groups.set([Group.objects.get(name=role)] if role else [])
    web = WebClient()
    web.force_login(user)
    return web


def audit_since(start: int):  # type: ignore[no-untyped-def]
    """The audit trail is append-only and outlives a test: the records made after ``start``."""
    return AuditRecord.objects.filter(pk__gt=start)


def last_audit() -> int:
    return AuditRecord.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def form(**fields: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "queue backlog",
        "kind": "queue_age",
        "target": "emails",
        "threshold": "300",
        "window_seconds": "3600",
        "channel": "webhook",
        "destination": HOOK,
        "secret_env": "ALERT_WEBHOOK_KEY",
        "reminder_minutes": "0",
        "enabled": "on",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def test_admins_create_edit_disable_enable_and_delete_audited(pages) -> None:
    start = last_audit()
    admin = signed_in("alerts-admin", "admin")
    assert admin.get("/alerts/new/").status_code == 200
    response = admin.post("/alerts/new/", form())
    assert response.status_code == 302 and response["Location"] == "/alerts/"
    rule = AlertRule.objects.get(name="queue backlog")
    assert (rule.kind, rule.target, rule.threshold, rule.created_by) == (
        "queue_age",
        "emails",
        300,
        "alerts-admin",
    )
    created = audit_since(start).get(action="alert_rule.create")
    assert created.actor == "alerts-admin" and created.ok and created.completed_at
    assert "oldest workflow on queue emails waiting more than 300 s" in created.outcome

    changed = form(threshold="600", destination=HOOK + "-rotated")
    assert admin.post(f"/alerts/{rule.pk}/", changed).status_code == 302
    updated = audit_since(start).get(action="alert_rule.update")
    assert "threshold: 300.0 → 600.0" in updated.outcome
    assert "destination changed" in updated.outcome and "secret" not in updated.outcome

    AlertState.objects.create(rule=rule, firing=True, seq=1, since=timezone.now())
    assert admin.post(f"/alerts/{rule.pk}/disable/").status_code == 302
    rule.refresh_from_db()
    assert not rule.enabled and not rule.state.firing
    disabled = AlertEvent.objects.get(kind="disabled")
    assert disabled.dispatched  # recorded in the history, nothing sent
    assert admin.post(f"/alerts/{rule.pk}/enable/").status_code == 302
    assert AlertRule.objects.get(pk=rule.pk).enabled
    assert admin.post(f"/alerts/{rule.pk}/delete/").status_code == 302
    assert not AlertRule.objects.exists()
    assert AlertEvent.objects.get().rule_name == "queue backlog"  # history stays
    actions = list(
        audit_since(start)
        .filter(action__startswith="alert_rule.")
        .order_by("pk")
        .values_list("action", "ok")
    )
    assert actions == [
        ("alert_rule.create", True),
        ("alert_rule.update", True),
        ("alert_rule.disable", True),
        ("alert_rule.enable", True),
        ("alert_rule.delete", True),
    ]
    page = admin.get("/alerts/")
    assert b"(deleted)" in page.content


@pytest.mark.parametrize(
    "fields, field, reason",
    [
        ({"target": ""}, "target", "needs the queue"),
        ({"kind": "failures", "target": ""}, "target", "needs the workflow name"),
        ({"secret_env": "hunter2-the-actual-key"}, "secret_env", "not the key itself"),
        ({"destination": "ftp://example.com/x"}, "destination", "not a valid URL"),
        ({"channel": "email", "destination": "ops@, x"}, "destination", "e-mail addresses"),
        ({"threshold": "-1"}, "threshold", "0 or more"),
        ({"kind": "failures", "rate": "on", "threshold": "150"}, "threshold", "between 0"),
        ({"kind": "pending_too_long", "window_seconds": "0"}, "window_seconds", "at least"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(pages, fields, field, reason) -> None:
    start = last_audit()
    admin = signed_in("alerts-admin", "admin")
    response = admin.post("/alerts/new/", form(**fields))
    assert response.status_code == 200
    assert reason in " ".join(response.context["form"].errors[field])
    assert not AlertRule.objects.exists()
    assert not audit_since(start).exists()  # nothing was attempted


def test_viewers_read_but_cannot_change_and_do_not_see_secret_urls(pages) -> None:
    rule = AlertRule.objects.create(
        name="hook", kind="stranded", destination=HOOK, secret_env="ALERT_WEBHOOK_KEY"
    )
    viewer = signed_in("alerts-viewer", "viewer")
    page = viewer.get("/alerts/")
    assert page.status_code == 200
    assert b"hook" in page.content and b"https://hooks.example.com/" in page.content
    assert b"very-secret-path" not in page.content and b"New rule" not in page.content
    assert viewer.get("/alerts/new/").status_code == 403
    assert viewer.get(f"/alerts/{rule.pk}/").status_code == 403
    assert viewer.get(f"/alerts/{rule.pk}/delete/").status_code == 403
    assert viewer.post("/alerts/new/", form()).status_code == 403
    for action in ("disable", "enable", "delete"):
        assert viewer.post(f"/alerts/{rule.pk}/{action}/").status_code == 403
    operator = signed_in("alerts-operator", "operator")
    assert operator.post(f"/alerts/{rule.pk}/delete/").status_code == 403
    assert AlertRule.objects.get(pk=rule.pk).enabled
    assert WebClient().get("/alerts/").status_code == 302  # to the login page
    admin = signed_in("alerts-admin", "admin")
    assert b"very-secret-path" in admin.get("/alerts/").content
    assert admin.get(f"/alerts/{rule.pk}/disable/").status_code == 405  # POST only
    confirm = admin.get(f"/alerts/{rule.pk}/delete/")  # deleting asks first
    assert confirm.status_code == 200 and b"Delete the alert rule hook?" in confirm.content
    assert AlertRule.objects.filter(pk=rule.pk).exists()
    assert inline_code(confirm.content)[0] == []
    assert admin.post(f"/alerts/{rule.pk}/explode/").status_code == 404
    assert admin.post("/alerts/99999/delete/").status_code == 404


def test_the_overview_shows_firing_alerts_escaped(pages) -> None:
    quiet = AlertRule.objects.create(name="quiet", kind="stranded", destination=HOOK)
    loud = AlertRule.objects.create(name=f"loud {XSS}", kind="stranded", destination=HOOK)
    AlertState.objects.create(rule=quiet, firing=False, summary="0 stranded")
    AlertState.objects.create(
        rule=loud, firing=True, since=timezone.now(), summary=f"3 stranded {XSS}"
    )
    viewer = signed_in("alerts-viewer", "viewer")
    overview = viewer.get("/")
    assert b"Firing alerts" in overview.content
    assert b"3 stranded &lt;script&gt;" in overview.content
    assert XSS.encode() not in overview.content and b"quiet" not in overview.content
    alerts = viewer.get("/alerts/")
    assert b"1 firing" in alerts.content and XSS.encode() not in alerts.content
    for page in (overview, alerts, signed_in("alerts-admin", "admin").get("/alerts/new/")):
        assert inline_code(page.content)[0] == []  # the strict CSP holds
    AlertRule.objects.filter(pk=loud.pk).update(enabled=False)
    assert b"Firing alerts" not in viewer.get("/").content
