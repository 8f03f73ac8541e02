"""The admin role may see login lockouts (django-axes) and lift them by deleting the attempts."""

from django.db import migrations

CODENAMES = ["view_accessattempt", "delete_accessattempt", "view_accesslog"]


def grant(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():  # axes' permissions exist before this runs
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    admin = apps.get_model("auth", "Group").objects.get(name="admin")
    admin.permissions.add(
        *Permission.objects.filter(content_type__app_label="axes", codename__in=CODENAMES)
    )


def revoke(apps, schema_editor):  # type: ignore[no-untyped-def]
    Permission = apps.get_model("auth", "Permission")
    admin = apps.get_model("auth", "Group").objects.filter(name="admin").first()
    if admin:
        admin.permissions.remove(
            *Permission.objects.filter(content_type__app_label="axes", codename__in=CODENAMES)
        )


class Migration(migrations.Migration):
    dependencies = [("console", "0002_roles"), ("axes", "0010_accessattemptexpiration")]
    operations = [migrations.RunPython(grant, revoke)]
