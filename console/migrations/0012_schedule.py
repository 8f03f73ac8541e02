# The managed schedules table (engine migration 0009): unmanaged, state only.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0011_streamitem"),
    ]

    operations = [
        migrations.CreateModel(
            name="Schedule",
            fields=[
                ("name", models.TextField(primary_key=True, serialize=False)),
                ("workflow_name", models.TextField()),
                ("cron", models.TextField()),
                ("timezone", models.TextField()),
                ("queue", models.TextField(null=True)),
                ("paused", models.BooleanField()),
                ("next_fire_at", models.BigIntegerField(null=True)),
                ("last_fire_at", models.BigIntegerField(null=True)),
                ("created_at", models.BigIntegerField()),
                ("updated_at", models.BigIntegerField()),
            ],
            options={
                "db_table": "schedules",
                "abstract": False,
                "managed": False,
            },
        ),
    ]
