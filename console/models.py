"""Read-only mirrors of the engine's system tables (``managed = False``).

The console reads through these; it never writes them (save, delete and bulk writes raise):
every action goes through ``engine.Client``. ``.record`` turns a row into the engine's record.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from engine import rows
from engine.records import StepInfo, WorkflowStatus


class ReadOnlyError(RuntimeError):
    pass


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise ReadOnlyError(
        "the engine's system tables are read-only in the console; act through engine.Client"
    )


class ReadOnlyQuerySet(models.QuerySet):  # type: ignore[type-arg]
    update = delete = bulk_create = bulk_update = update_or_create = get_or_create = _refuse  # type: ignore[assignment]


class SystemTable(models.Model):
    _system_table = True
    objects = ReadOnlyQuerySet.as_manager()

    class Meta:
        abstract = True
        managed = False

    save = delete = _refuse  # type: ignore[assignment]

    def columns(self) -> dict[str, Any]:
        return {f.column: getattr(self, f.attname) for f in self._meta.concrete_fields}


class Workflow(SystemTable):
    workflow_uuid = models.TextField(primary_key=True)
    status = models.TextField()
    name = models.TextField()
    inputs = models.TextField(null=True)
    output = models.TextField(null=True)
    error = models.TextField(null=True)
    executor_id = models.TextField(null=True)
    application_version = models.TextField(null=True)
    application_id = models.TextField(null=True)
    created_at = models.BigIntegerField()
    updated_at = models.BigIntegerField()
    recovery_attempts = models.BigIntegerField()
    queue_name = models.TextField(null=True)
    workflow_timeout_ms = models.BigIntegerField(null=True)
    workflow_deadline_epoch_ms = models.BigIntegerField(null=True)
    started_at_epoch_ms = models.BigIntegerField(null=True)
    completed_at = models.BigIntegerField(null=True)
    deduplication_id = models.TextField(null=True)
    priority = models.IntegerField()
    forked_from = models.TextField(null=True)
    parent_workflow_id = models.TextField(null=True)
    serialization = models.TextField()
    delay_until_epoch_ms = models.BigIntegerField(null=True)
    traceback = models.TextField(null=True)  # a failed workflow's (engine.attempts)
    waiting = models.TextField(null=True)  # what a PENDING workflow waits on (engine.waits)
    traceparent = models.TextField(null=True)  # engine migration 0006
    attributes = models.JSONField(null=True)  # engine migration 0007; {key: scalar}
    partition_key = models.TextField(null=True)  # engine migration 0007
    debounce_key = models.TextField(null=True)  # engine migration 0010; a burst's key

    class Meta(SystemTable.Meta):
        db_table = "workflow_status"
        app_label = "console"

    @property
    def record(self) -> WorkflowStatus:
        return rows.workflow_status_of_columns(self.columns())


class StreamItem(SystemTable):
    """One value of a workflow's stream (engine migration 0007); ``closed`` marks the end."""

    pk = models.CompositePrimaryKey("workflow_uuid", "key", "seq")
    workflow_uuid = models.TextField()
    key = models.TextField()
    seq = models.IntegerField()
    value = models.TextField(null=True)
    closed = models.IntegerField()
    function_id = models.IntegerField()

    class Meta(SystemTable.Meta):
        db_table = "streams"
        app_label = "console"


class Step(SystemTable):
    pk = models.CompositePrimaryKey("workflow_uuid", "function_id")
    workflow_uuid = models.TextField()
    function_id = models.IntegerField()
    function_name = models.TextField()
    output = models.TextField(null=True)
    error = models.TextField(null=True)
    child_workflow_id = models.TextField(null=True)
    started_at_epoch_ms = models.BigIntegerField(null=True)
    completed_at_epoch_ms = models.BigIntegerField(null=True)
    serialization = models.TextField()

    class Meta(SystemTable.Meta):
        db_table = "operation_outputs"
        app_label = "console"

    @property
    def record(self) -> StepInfo:
        return rows.step_info_of_columns(self.workflow_uuid, self.columns())


class Attempt(SystemTable):
    """A failed attempt of a step (engine.attempts)."""

    pk = models.CompositePrimaryKey("workflow_uuid", "function_id", "attempt")
    workflow_uuid = models.TextField()
    function_id = models.IntegerField()
    attempt = models.IntegerField()
    error = models.TextField(null=True)
    traceback = models.TextField(null=True)
    started_at_epoch_ms = models.BigIntegerField(null=True)
    completed_at_epoch_ms = models.BigIntegerField(null=True)

    class Meta(SystemTable.Meta):
        db_table = "operation_attempts"
        app_label = "console"


class Notification(SystemTable):
    message_uuid = models.TextField(primary_key=True)
    destination_uuid = models.TextField()
    topic = models.TextField(null=True)
    message = models.TextField()
    created_at_epoch_ms = models.BigIntegerField()
    serialization = models.TextField()
    seq = models.BigIntegerField(null=True)

    class Meta(SystemTable.Meta):
        db_table = "notifications"
        app_label = "console"


class Event(SystemTable):
    pk = models.CompositePrimaryKey("workflow_uuid", "key")
    workflow_uuid = models.TextField()
    key = models.TextField()
    value = models.TextField()
    serialization = models.TextField()

    class Meta(SystemTable.Meta):
        db_table = "workflow_events"
        app_label = "console"


class Executor(SystemTable):
    executor_id = models.TextField(primary_key=True)
    application_version = models.TextField()
    hostname = models.TextField(null=True)
    pid = models.IntegerField(null=True)
    queues = models.TextField(null=True)
    schedules = models.TextField(null=True)
    started_at = models.BigIntegerField()
    last_heartbeat = models.BigIntegerField()
    role = models.TextField(null=True)  # 0008_fleet: worker, dispatcher or celery
    node_name = models.TextField(null=True)  # a Celery worker's name@host

    class Meta(SystemTable.Meta):
        db_table = "executors"
        app_label = "console"


class Schedule(SystemTable):
    """A managed schedule (engine migration 0009): the engine's ``list_schedules`` row."""

    name = models.TextField(primary_key=True)
    workflow_name = models.TextField()
    cron = models.TextField()
    timezone = models.TextField()
    queue = models.TextField(null=True)
    paused = models.BooleanField()
    next_fire_at = models.BigIntegerField(null=True)  # epoch ms, UTC
    last_fire_at = models.BigIntegerField(null=True)
    created_at = models.BigIntegerField()
    updated_at = models.BigIntegerField()

    class Meta(SystemTable.Meta):
        db_table = "schedules"
        app_label = "console"


# -- the console's own tables -----------------------------------------------------------------


class AppendOnlyQuerySet(models.QuerySet):  # type: ignore[type-arg]
    def _append_only(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyError("the audit trail is append-only: records are never changed")

    update = delete = bulk_update = _append_only  # type: ignore[assignment]

    def complete(self, pk: int, *, outcome: str, ok: bool, status_after: dict[str, str]) -> int:
        """Write the outcome of an action whose intent was recorded: once, never changed.

        The record was written before the action ran (so an interrupted action still leaves
        what it set out to do); this fills in how it went, only while it has no outcome.
        """
        unfinished = models.QuerySet.filter(self, pk=pk, completed_at__isnull=True)
        return models.QuerySet.update(
            unfinished,
            outcome=outcome,
            ok=ok,
            status_after=status_after,
            completed_at=timezone.now(),
        )


class AuditRecord(models.Model):
    """One operator action: who, when, what, on which workflows, and how it went."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, db_index=True)
    source = models.CharField(max_length=16, default="console")  # console | cli
    action = models.CharField(max_length=32, db_index=True)
    workflow_ids = models.JSONField(default=list)
    filter = models.TextField(blank=True)  # a bulk action's filter, as a query string
    reason = models.TextField(blank=True)
    status_before = models.JSONField(default=dict)
    status_after = models.JSONField(default=dict)
    outcome = models.TextField(blank=True)
    ok = models.BooleanField(null=True)  # None until the outcome is written
    completed_at = models.DateTimeField(null=True, blank=True)  # None: intent only, so far
    client_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        app_label = "console"
        ordering = ["-at", "-id"]
        permissions = [
            ("operate_workflows", "Can cancel, resume and fork workflows"),
            ("view_audit", "Can read the audit trail"),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ReadOnlyError("the audit trail is append-only: records are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyError("the audit trail is append-only: records are never deleted")


class AuditTarget(models.Model):
    """Which workflows an audit record touched, indexed, for a workflow's audit strip."""

    record = models.ForeignKey(AuditRecord, on_delete=models.PROTECT, related_name="targets")
    workflow_id = models.TextField(db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        app_label = "console"


class BulkJob(models.Model):
    """A bulk action running in the background, with per-item outcomes for its progress page."""

    created = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=16)
    total = models.IntegerField()
    done = models.IntegerField(default=0)
    outcomes = models.JSONField(default=dict)  # workflow ID -> outcome
    finished = models.BooleanField(default=False)
    audit = models.ForeignKey(AuditRecord, null=True, on_delete=models.SET_NULL)

    class Meta:
        app_label = "console"


class SavedView(models.Model):
    """A named filter set of the workflow list: its owner's, or everyone's when shared (only
    a user with ``share_views``, the admin role, may share one)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=80)
    query = models.TextField()  # the list's query string, validated when saved
    shared = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "console"
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="saved_view_unique_name")
        ]
        permissions = [("share_views", "Can share saved views with everyone")]


# The alerting tables live in console/alerts/models.py; importing them here registers them
# with the console app (Django looks for an app's models in its models module).
from console.alerts.models import AlertEvent, AlertRule, AlertState, Lease  # noqa: E402, F401


class RetentionRun(models.Model):
    """One pass of the retention policy by a worker (console/retention.py): what it deleted."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    executor_id = models.CharField(max_length=200, blank=True)
    policy = models.JSONField(default=dict)
    deleted = models.BigIntegerField(default=0)
    by_name = models.JSONField(default=dict)  # workflow name ("*": the default rule) -> count
    error = models.TextField(blank=True)

    class Meta:
        app_label = "console"
        ordering = ["-at", "-id"]
        permissions = [("delete_workflows", "Can delete workflows (the admin role)")]
