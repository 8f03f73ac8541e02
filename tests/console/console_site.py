"""Django in the test process: the console's own tables in a temporary SQLite file, and the
"waymark" alias pointed at each test's engine database (SQLite file or Postgres schema)."""

from __future__ import annotations

import os
import tempfile

_home = tempfile.mkdtemp(prefix="waymark-console-tests-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{_home}/console.sqlite3"
os.environ["WAYMARK_DATABASE_URL"] = os.environ["DATABASE_URL"]

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

setup_test_environment()
call_command("migrate", interactive=False, verbosity=0)


def point_engine_database(db) -> None:  # type: ignore[no-untyped-def]
    """Aim the console's "waymark" alias at this test's engine database."""
    from console.dburl import database_config

    config = database_config(db.url)
    if db.backend == "postgres":
        config["OPTIONS"] = {"options": f"-c search_path={db.schema}"}
    connections["waymark"].close()
    connections.settings["waymark"] = {
        **connections.settings["default"],
        **config,
        "TEST": {},
        "ATOMIC_REQUESTS": False,
    }
    del connections["waymark"]
