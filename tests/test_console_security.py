"""Console hardening: passwords, the 503 page, login throttling, roles that cannot escalate,
security headers, error logging. (Production serving with gunicorn: test_console_production.)"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client as WebClient

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
