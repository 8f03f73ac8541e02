"""`make run`: migrate, make sure there is a login, seed the demo once, then run a worker
and the web server together on http://127.0.0.1:8000 (Ctrl-C stops both)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")


def admin_password(username: str, environ: Mapping[str, str]) -> str:
    """The first login's password: WAYMARK_ADMIN_PASSWORD if set, else a random one, either
    way checked against AUTH_PASSWORD_VALIDATORS like every other password (a weak one stops
    `make run` with the reason instead of creating a superuser anyone could guess)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    password = environ.get("WAYMARK_ADMIN_PASSWORD") or secrets.token_urlsafe(16)
    try:
        validate_password(
            password, get_user_model()(username=username, email=f"{username}@localhost")
        )
    except ValidationError as exc:
        raise SystemExit("WAYMARK_ADMIN_PASSWORD refused: " + " ".join(exc.messages)) from None
    return password


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
        password = admin_password(username, os.environ)
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
