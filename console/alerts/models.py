"""The alerting tables: ordinary console tables (migration 0006_alerts), never the engine's."""

from __future__ import annotations

import uuid

from django.db import models


class Kind(models.TextChoices):
    FAILURES = "failures", "Failures of a workflow (count or rate in a window)"
    QUEUE_AGE = "queue_age", "A queue's oldest enqueued workflow is too old"
    STRANDED = "stranded", "Workflows stranded on a version no live executor runs"
    NO_EXECUTOR = "no_executor", "No live executor for an application version"
    SCHEDULE_MISSED = "schedule_missed", "A schedule missed a tick"
    PENDING_TOO_LONG = "pending_too_long", "Workflows PENDING longer than a limit"


class Channel(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (JSON POST, Slack-compatible)"
    EMAIL = "email", "E-mail"


class AlertRule(models.Model):
    """One rule: what to read, when it fires, whom to tell. ``target`` names the workflow,
    queue, application version or schedule the kind is about; ``threshold`` is compared with
    the reading (a count, a rate in %, or seconds); ``window_seconds`` is the failure window,
    or the PENDING age limit."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)  # notification IDs
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    target = models.CharField(max_length=500, blank=True)
    threshold = models.FloatField(default=0)
    window_seconds = models.PositiveIntegerField(default=3600)
    rate = models.BooleanField(default=False)  # failures: threshold is a failure rate in %
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WEBHOOK)
    destination = models.TextField()  # the webhook URL, or e-mail addresses (comma-separated)
    secret_env = models.CharField(max_length=100, blank=True)  # env var holding the HMAC key
    reminder_minutes = models.PositiveIntegerField(default=0)  # 0: no reminders while firing
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "console"
        ordering = ["name"]
        permissions = [
            ("manage_alerts", "Can create, change, disable and delete alert rules"),
            ("view_metrics", "Can read /metrics"),
        ]

    def __str__(self) -> str:
        return self.name


class AlertState(models.Model):
    """Where a rule stands. Written only by the evaluator holding the lease, and every change
    of state is conditional on ``seq`` (compare-and-set): two evaluators can never both record
    the same change, so each change makes exactly one notification."""

    rule = models.OneToOneField(
        AlertRule, on_delete=models.CASCADE, primary_key=True, related_name="state"
    )
    firing = models.BooleanField(default=False)
    since = models.DateTimeField(null=True)
    seq = models.PositiveIntegerField(default=0)  # state changes so far
    reminders = models.PositiveIntegerField(default=0)  # reminders sent while firing this time
    reminded_at = models.DateTimeField(null=True)
    value = models.FloatField(null=True)
    summary = models.TextField(blank=True)
    evaluated_at = models.DateTimeField(null=True)

    class Meta:
        app_label = "console"


class AlertEvent(models.Model):
    """History (firing, resolved, reminder, disabled) and the outbox of notifications: an event
    is written with its state change, in one transaction, and the evaluator starts its
    notification workflow (ID ``notification_id``, so a restart never starts two) until
    ``dispatched`` says it did. A deleted rule's history stays, under its name."""

    rule = models.ForeignKey(AlertRule, null=True, on_delete=models.SET_NULL, related_name="events")
    rule_name = models.CharField(max_length=100)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16)  # firing | resolved | reminder | disabled
    value = models.FloatField(null=True)
    summary = models.TextField()
    notification_id = models.CharField(max_length=200, unique=True)
    dispatched = models.BooleanField(default=False, db_index=True)

    class Meta:
        app_label = "console"
        ordering = ["-at", "-id"]


class Lease(models.Model):
    """A named lease: who holds it, until when (on the database's clock). console/alerts/lease.py"""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    class Meta:
        app_label = "console"
