"""Console hardening: passwords, the 503 page, login throttling, roles that cannot escalate,
security headers, error logging. (Production serving with gunicorn: test_console_production.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client as WebClient

ROOT = Path(__file__).resolve().parent.parent
STRONG = "violet-harbour-lantern-42"


def account(name: str, role: str | None = None, **fields: object):  # type: ignore[no-untyped-def]
    """A user with a known strong password, (re)set on every call so tests stay independent."""
    user, _ = get_user_model().objects.update_or_create(
        username=name, defaults={"is_staff": role == "admin", "is_superuser": False, **fields}
    )
    user.set_password(STRONG)
    user.save()
    user.groups.set([Group.objects.get(name=role)] if role else [])
    user.user_permissions.clear()
    return user


def logged_in(user) -> WebClient:  # type: ignore[no-untyped-def]
    web = WebClient()
    web.force_login(user)
    return web


# --- passwords -----------------------------------------------------------------------------


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'c.sqlite3'}", **env},
        capture_output=True,
        text=True,
    )


def test_createuser_refuses_weak_passwords_with_the_reason(tmp_path) -> None:
    assert manage(tmp_path, "migrate", "-v", "0").returncode == 0
    refusals = {
        "password": "too common",
        "12345678": "entirely numeric",
        "short1": "too short",
        "margaret-h": "too similar to the username",
    }
    for password, reason in refusals.items():
        run = manage(
            tmp_path,
            "createuser",
            "margaret-h",
            "--role",
            "viewer",
            WAYMARK_NEW_USER_PASSWORD=password,
        )
        assert run.returncode != 0, password
        assert "password refused" in run.stderr and reason in run.stderr, run.stderr
    created = manage(
        tmp_path, "createuser", "margaret-h", "--role", "viewer", WAYMARK_NEW_USER_PASSWORD=STRONG
    )
    assert created.returncode == 0, created.stderr
    assert "created margaret-h (viewer)" in created.stdout


def test_make_run_refuses_a_weak_admin_password_and_generates_a_strong_one() -> None:
    from django.contrib.auth.password_validation import validate_password

    from console.devserver import admin_password

    with pytest.raises(SystemExit) as refused:
        admin_password("admin", {"WAYMARK_ADMIN_PASSWORD": "a"})
    assert "WAYMARK_ADMIN_PASSWORD refused" in str(refused.value)
    assert "too short" in str(refused.value)
    with pytest.raises(SystemExit) as common:
        admin_password("admin", {"WAYMARK_ADMIN_PASSWORD": "password123"})
    assert "too common" in str(common.value) and "password123" not in str(common.value)
    assert admin_password("admin", {"WAYMARK_ADMIN_PASSWORD": STRONG}) == STRONG
    generated = admin_password("admin", {})
    validate_password(generated, get_user_model()(username="admin"))  # passes
    assert generated != admin_password("admin", {})


def test_the_four_standard_validators_are_configured() -> None:
    from django.contrib.auth.password_validation import get_default_password_validators

    names = {type(v).__name__ for v in get_default_password_validators()}
    assert names == {
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    }


# --- the 503 page --------------------------------------------------------------------------


def test_the_503_page_shows_no_connection_details(caplog) -> None:
    web = logged_in(account("sec-viewer", "viewer"))
    conns = connections
    conns["waymark"].close()
    saved = dict(conns.settings["waymark"])
    conns.settings["waymark"] = {
        **saved,
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "secretdbname",
        "HOST": "127.0.0.1",
        "PORT": "1",
        "USER": "secretdbuser",
        "PASSWORD": "secretdbpass",
        "OPTIONS": {"connect_timeout": 2},
    }
    del conns["waymark"]
    try:
        with caplog.at_level("ERROR", logger="waymark.console"):
            response = web.get("/workflows/")
    finally:
        conns["waymark"].close()
        conns.settings["waymark"] = saved
        del conns["waymark"]
    assert response.status_code == 503 and response["Retry-After"] == "10"
    page = response.content.decode()
    assert "The database is not answering" in page
    for leak in (
        "secretdbname",
        "secretdbuser",
        "secretdbpass",
        "127.0.0.1",
        "port",
        "refused",
        "connection to server",
        "psycopg",
        "OperationalError",
        "Traceback",
    ):
        assert leak not in page, leak
    # ... while the operator still finds the cause in the server log.
    assert any("127.0.0.1" in r.getMessage() for r in caplog.records)
