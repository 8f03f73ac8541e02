"""Read-only mirrors of the engine's system tables (``managed = False``).

The console reads through these; it never writes them (save, delete and bulk writes raise):
every action goes through ``engine.Client``. ``.record`` turns a row into the engine's record.
"""

from __future__ import annotations

from typing import Any

from django.db import models

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

    class Meta(SystemTable.Meta):
        db_table = "workflow_status"
        app_label = "console"

    @property
    def record(self) -> WorkflowStatus:
        return rows.workflow_status(self.columns())


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
        return rows.step_info(self.workflow_uuid, self.columns())


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

    class Meta(SystemTable.Meta):
        db_table = "executors"
        app_label = "console"
