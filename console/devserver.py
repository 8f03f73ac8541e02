"""`make run`: migrate, make sure there is a login, seed the demo once, then run a worker
and the web server together on http://127.0.0.1:8000 (Ctrl-C stops both)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")


def main() -> None:
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from engine import Client

    call_command("migrate", interactive=False, verbosity=0)
    users = get_user_model()
    username = os.environ.get("WAYMARK_ADMIN_USER", "admin")
    if not users.objects.filter(username=username).exists():
        password = os.environ.get("WAYMARK_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.objects.create_superuser(username, f"{username}@localhost", password)
        shown = (
            "(from WAYMARK_ADMIN_PASSWORD)" if "WAYMARK_ADMIN_PASSWORD" in os.environ else password
        )
        print(f"\n  Login created: {username} / {shown}  (shown once)\n", flush=True)
    else:
        print(
            f"\n  Login: {username} (password set earlier; `python manage.py changepassword "
            f"{username}` to reset)\n",
            flush=True,
        )

    with Client(settings.WAYMARK_DATABASE_URL, schema=settings.WAYMARK_SCHEMA) as client:
        if not client.list_workflows(limit=1) and settings.WAYMARK_APP == "demo.app:build":
            from demo import app

            print(f"  Demo: {app.seed(client)} workflows enqueued for the worker.", flush=True)

    worker_proc = subprocess.Popen([sys.executable, "manage.py", "runworker"])
    try:
        call_command("runserver", "127.0.0.1:8000", use_reloader=False)
    finally:
        worker_proc.send_signal(signal.SIGTERM)
        worker_proc.wait(timeout=30)


if __name__ == "__main__":
    main()
