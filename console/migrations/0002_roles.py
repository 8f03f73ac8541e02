"""The three roles as groups: viewer (read), operator (also act), admin (also audit, users)."""

from django.db import migrations

ROLES = {
    "viewer": [],
    "operator": ["operate_workflows"],
    "admin": [
        "operate_workflows",
        "view_audit",
        "add_user",
        "change_user",
        "view_user",
        "view_group",
        "view_auditrecord",
    ],
}


def create_roles(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():  # permissions exist before this runs
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(Permission.objects.filter(codename__in=codenames))


def remove_roles(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [("console", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create_roles, remove_roles)]
