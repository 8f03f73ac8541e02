"""Alert rules, their state and history, the evaluator's lease; the admin role may manage the
rules and read /metrics. (Numbered 0006 beside the saved views' 0005; the chain is joined when
both land.)"""

import uuid

import django.db.models.deletion
from django.db import migrations, models

PERMISSIONS = ["manage_alerts", "view_metrics"]


def grant_admins(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():  # the permissions exist before this runs
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.add(*Permission.objects.filter(codename__in=PERMISSIONS))


def revoke_admins(apps, schema_editor):  # type: ignore[no-untyped-def]
    Permission = apps.get_model("auth", "Permission")
    for permission in Permission.objects.filter(codename__in=PERMISSIONS):
        permission.group_set.clear()


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0005_saved_views"),
    ]

    operations = [
        migrations.CreateModel(
            name="AlertRule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("uid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ("name", models.CharField(max_length=100, unique=True)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("failures", "Failures of a workflow (count or rate in a window)"),
                            ("queue_age", "A queue's oldest enqueued workflow is too old"),
                            ("stranded", "Workflows stranded on a version no live executor runs"),
                            ("no_executor", "No live executor for an application version"),
                            ("schedule_missed", "A schedule missed a tick"),
                            ("pending_too_long", "Workflows PENDING longer than a limit"),
                        ],
                        max_length=32,
                    ),
                ),
                ("target", models.CharField(blank=True, max_length=500)),
                ("threshold", models.FloatField(default=0)),
                ("window_seconds", models.PositiveIntegerField(default=3600)),
                ("rate", models.BooleanField(default=False)),
                (
                    "channel",
                    models.CharField(
                        choices=[
                            ("webhook", "Webhook (JSON POST, Slack-compatible)"),
                            ("email", "E-mail"),
                        ],
                        default="webhook",
                        max_length=16,
                    ),
                ),
                ("destination", models.TextField()),
                ("secret_env", models.CharField(blank=True, max_length=100)),
                ("reminder_minutes", models.PositiveIntegerField(default=0)),
                ("enabled", models.BooleanField(default=True)),
                ("created_by", models.CharField(blank=True, max_length=150)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["name"],
                "permissions": [
                    ("manage_alerts", "Can create, change, disable and delete alert rules"),
                    ("view_metrics", "Can read /metrics"),
                ],
            },
        ),
        migrations.CreateModel(
            name="Lease",
            fields=[
                ("name", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("holder", models.CharField(max_length=200)),
                ("expires_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="AlertState",
            fields=[
                (
                    "rule",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="state",
                        serialize=False,
                        to="console.alertrule",
                    ),
                ),
                ("firing", models.BooleanField(default=False)),
                ("since", models.DateTimeField(null=True)),
                ("seq", models.PositiveIntegerField(default=0)),
                ("reminders", models.PositiveIntegerField(default=0)),
                ("reminded_at", models.DateTimeField(null=True)),
                ("value", models.FloatField(null=True)),
                ("summary", models.TextField(blank=True)),
                ("evaluated_at", models.DateTimeField(null=True)),
            ],
        ),
        migrations.CreateModel(
            name="AlertEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("rule_name", models.CharField(max_length=100)),
                ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("kind", models.CharField(max_length=16)),
                ("value", models.FloatField(null=True)),
                ("summary", models.TextField()),
                ("notification_id", models.CharField(max_length=200, unique=True)),
                ("dispatched", models.BooleanField(db_index=True, default=False)),
                (
                    "rule",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="events",
                        to="console.alertrule",
                    ),
                ),
            ],
            options={
                "ordering": ["-at", "-id"],
            },
        ),
        migrations.RunPython(grant_admins, revoke_admins),
    ]
