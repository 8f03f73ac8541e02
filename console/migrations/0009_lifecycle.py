"""Data lifecycle: retention runs, and the admin role's permission to delete workflows."""

from django.db import migrations, models


def grant(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():  # delete_workflows exists before this runs
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    admin = apps.get_model("auth", "Group").objects.filter(name="admin").first()
    if admin:
        admin.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="console", codename="delete_workflows"
            )
        )


class Migration(migrations.Migration):
    dependencies = [("console", "0006_alerts")]

    operations = [
        migrations.AddField(  # unmanaged: state only (the engine's 0006 adds the column)
            model_name="workflow", name="traceparent", field=models.TextField(null=True)
        ),
        migrations.CreateModel(
            name="RetentionRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("executor_id", models.CharField(blank=True, max_length=200)),
                ("policy", models.JSONField(default=dict)),
                ("deleted", models.BigIntegerField(default=0)),
                ("by_name", models.JSONField(default=dict)),
                ("error", models.TextField(blank=True)),
            ],
            options={
                "ordering": ["-at", "-id"],
                "permissions": [("delete_workflows", "Can delete workflows (the admin role)")],
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
