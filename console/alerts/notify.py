"""Notifications as durable Waymark workflows: one workflow per alert event, whose single step
delivers it (webhook or e-mail) and is retried with backoff.

The evaluator starts ``waymark.alerts.notify`` by name through ``engine.Client`` with the
event's ``notification_id`` as the workflow ID, so a crash before or after the start neither
loses the notification (the event stays undispatched and is started again) nor sends it twice
(the same ID starts nothing new). A worker that dies mid-delivery is recovered like any
workflow; the step's checkpoint means a delivery that was recorded is never repeated. Only a
crash between the receiver's answer and the checkpoint can repeat one: receivers dedupe on
``X-Waymark-Delivery``.

The workflow's input is the event's ID and names only: the webhook URL (which, for Slack, is
itself a secret) and the signing key are read when sending, from the rule and the environment,
so neither lands in the system tables or on a workflow page.

Webhook: a JSON POST with a Slack-compatible ``text`` and the details; ``X-Waymark-Signature:
sha256=<hex HMAC-SHA256 of the body>`` keyed by the environment variable the rule names.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import close_old_connections

from console.alerts.models import AlertEvent, AlertRule, Channel
from engine import Engine

WORKFLOW = "waymark.alerts.notify"
STEP = "waymark.alerts.deliver"
TIMEOUT_S = 10.0
HEADLINES = {"firing": "FIRING", "resolved": "RESOLVED", "reminder": "STILL FIRING"}


class DeliveryError(RuntimeError):
    """A notification could not be delivered this attempt (retried by the step's policy).
    Its message names the rule, never the URL or the secret."""


def register(
    engine: Engine, *, attempts: int = 8, interval_seconds: float = 2.0, backoff_rate: float = 2.0
) -> None:
    """Register the notification workflow on a worker's engine (console/worker.py does it for
    every runworker and Celery worker). With the defaults a receiver may be down for about
    four minutes (2 + 4 + ... + 128 s between eight attempts) before the workflow fails."""

    @engine.step(
        name=STEP,
        max_attempts=attempts,
        interval_seconds=interval_seconds,
        backoff_rate=backoff_rate,
    )
    def deliver(event_id: int) -> dict[str, Any]:
        close_old_connections()  # a long-lived worker thread: drop a connection gone stale
        try:
            return send(event_id)
        finally:
            close_old_connections()

    @engine.workflow(name=WORKFLOW, max_recovery_attempts=10)
    def notify(ctx: Any, notice: dict[str, Any]) -> dict[str, Any]:
        return deliver(notice["event"])


def send(event_id: int) -> dict[str, Any]:
    event = AlertEvent.objects.select_related("rule").filter(pk=event_id).first()
    if event is None or event.rule is None:
        return {"sent": False, "reason": "the alert rule was deleted before its notification"}
    if event.rule.channel == Channel.EMAIL:
        return _email(event.rule, event)
    return _webhook(event.rule, event)


def text(rule: AlertRule, event: AlertEvent) -> str:
    line = f"[{HEADLINES.get(event.kind, event.kind.upper())}] {rule.name}: {event.summary}"
    if settings.WAYMARK_CONSOLE_URL:
        line += f"\n{settings.WAYMARK_CONSOLE_URL.rstrip('/')}/alerts/"
    return line


def body(rule: AlertRule, event: AlertEvent) -> dict[str, Any]:
    return {
        "text": text(rule, event),  # what Slack (and Mattermost, Teams' Slack mode) shows
        "rule": rule.name,
        "kind": rule.kind,
        "target": rule.target,
        "event": event.kind,
        "firing": event.kind != "resolved",
        "value": event.value,
        "summary": event.summary,
        "at": event.at.isoformat(),
        "notification_id": event.notification_id,
    }


def signature(secret: bytes, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret, payload, hashlib.sha256).hexdigest()


def _webhook(rule: AlertRule, event: AlertEvent) -> dict[str, Any]:
    payload = json.dumps(body(rule, event)).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "waymark-alerts",
        "X-Waymark-Delivery": event.notification_id,
    }
    if rule.secret_env:
        secret = os.environ.get(rule.secret_env, "")
        if not secret:
            # Never send unsigned what the receiver expects signed: fail (and retry) instead.
            raise DeliveryError(
                f"alert rule {rule.name!r} signs with ${rule.secret_env}, which is not set in "
                "the worker's environment"
            )
        headers["X-Waymark-Signature"] = signature(secret.encode(), payload)
    request = urllib.request.Request(rule.destination, data=payload, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return {"sent": True, "status": response.status}
    except urllib.error.HTTPError as exc:
        raise DeliveryError(
            f"the webhook of alert rule {rule.name!r} answered HTTP {exc.code}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(
            f"the webhook of alert rule {rule.name!r} is unreachable: {type(reason).__name__}"
        ) from None


def _email(rule: AlertRule, event: AlertEvent) -> dict[str, Any]:
    recipients = [a.strip() for a in rule.destination.split(",") if a.strip()]
    message = text(rule, event)
    details = json.dumps(body(rule, event), indent=2)
    try:
        send_mail(
            message.splitlines()[0][:200],
            f"{message}\n\n{details}\n",
            settings.DEFAULT_FROM_EMAIL,
            recipients,
        )
    except OSError as exc:  # smtplib's errors are OSErrors
        raise DeliveryError(
            f"e-mail for alert rule {rule.name!r} was not accepted: {type(exc).__name__}"
        ) from None
    return {"sent": True, "recipients": len(recipients)}
