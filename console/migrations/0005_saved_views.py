"""Saved views of the workflow list; the admin role may share them with everyone."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def grant(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():  # share_views exists before this runs
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    admin = apps.get_model("auth", "Group").objects.filter(name="admin").first()
    if admin:
        admin.permissions.add(
            *Permission.objects.filter(content_type__app_label="console", codename="share_views")
        )


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0004_audit_intent"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SavedView",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=80)),
                ("query", models.TextField()),
                ("shared", models.BooleanField(default=False)),
                ("created", models.DateTimeField(auto_now_add=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "ordering": ["name", "id"],
                "permissions": [("share_views", "Can share saved views with everyone")],
                "constraints": [
                    models.UniqueConstraint(fields=("owner", "name"), name="saved_view_unique_name")
                ],
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
