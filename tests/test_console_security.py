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


# --- login throttling ----------------------------------------------------------------------


@pytest.fixture
def throttle():
    """Each test starts and ends with no recorded failures (the console database is shared)."""
    from axes.utils import reset

    reset()
    yield
    reset()


def sign_in(name: str, password: str, address: str, url: str = "/accounts/login/"):  # type: ignore[no-untyped-def]
    web = WebClient(REMOTE_ADDR=address)
    response = web.post(url, {"username": name, "password": password, "next": "/"})
    return response, web


def signed_in(web: WebClient) -> bool:
    return "_auth_user_id" in web.session


def test_five_failures_lock_the_username_and_the_address_until_reset(throttle) -> None:
    from django.core.management import call_command

    account("throttled", "viewer")
    account("bystander", "viewer")
    for attempt in range(5):
        response, _ = sign_in("throttled", "wrong-guess", "10.9.0.1")
        expected = 429 if attempt == 4 else 200  # the fifth failure locks
        assert response.status_code == expected, attempt
    assert b"did not match" not in response.content
    response, web = sign_in("throttled", STRONG, "10.9.0.1")
    assert response.status_code == 429 and not signed_in(web)
    assert b"Too many failed sign-in attempts (5)" in response.content
    assert b"locked for 15 minutes" in response.content
    # Per username: the right password from another address is refused too ...
    response, web = sign_in("throttled", STRONG, "10.9.0.2")
    assert response.status_code == 429 and not signed_in(web)
    # ... and per address: another account from the locked address as well ...
    response, web = sign_in("bystander", STRONG, "10.9.0.1")
    assert response.status_code == 429 and not signed_in(web)
    # ... while another account from another address is unaffected.
    response, web = sign_in("bystander", STRONG, "10.9.0.3")
    assert response.status_code == 302 and signed_in(web)

    call_command("axes_reset_username", "throttled")  # removes its failures from every address
    response, web = sign_in("throttled", STRONG, "10.9.0.2")
    assert response.status_code == 302 and signed_in(web)


def test_failures_spread_over_usernames_lock_the_address_until_reset(throttle) -> None:
    from django.core.management import call_command

    account("bystander", "viewer")
    for attempt in range(5):  # a password spray: one guess per username, from one address
        response, _ = sign_in(f"guess-{attempt}", "wrong-guess", "10.9.0.5")
    assert response.status_code == 429
    response, web = sign_in("bystander", STRONG, "10.9.0.5")
    assert response.status_code == 429 and not signed_in(web)
    response, web = sign_in("bystander", STRONG, "10.9.0.6")
    assert response.status_code == 302 and signed_in(web)
    call_command("axes_reset_ip", "10.9.0.5")
    response, web = sign_in("bystander", STRONG, "10.9.0.5")
    assert response.status_code == 302 and signed_in(web)


def test_the_admin_login_is_throttled_and_an_admin_lifts_the_lockout(throttle) -> None:
    from axes.models import AccessAttempt

    account("staff-target", "admin")
    for _ in range(5):
        response, _ = sign_in("staff-target", "wrong-guess", "10.9.1.1", "/admin/login/")
    assert response.status_code == 429
    response, web = sign_in("staff-target", STRONG, "10.9.1.2", "/admin/login/")
    assert response.status_code == 429 and not signed_in(web)
    assert b"Too many failed sign-in attempts" in response.content

    # A user with the admin role sees the lockout and lifts it by deleting the attempts.
    boss = logged_in(account("lockout-lifter", "admin"))
    listing = boss.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and b"staff-target" in listing.content
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    lifted = boss.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert lifted.status_code == 302 and not AccessAttempt.objects.exists()
    response, web = sign_in("staff-target", STRONG, "10.9.1.1", "/admin/login/")
    assert response.status_code == 302 and signed_in(web)


# --- roles that cannot escalate ------------------------------------------------------------


def change_form(user, **overrides: object) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the admin's user change form posts, with the current values."""
    data: dict[str, object] = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "groups": [g.pk for g in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    if user.is_staff:
        data["is_staff"] = "on"
    data.update(overrides)
    return data


def reload(user):  # type: ignore[no-untyped-def]
    return get_user_model().objects.get(pk=user.pk)


def test_the_admin_role_cannot_make_itself_superuser_or_grant_beyond_its_own() -> None:
    from django.contrib.auth.models import Permission

    me = account("role-admin", "admin")
    web = logged_in(me)
    url = f"/admin/auth/user/{me.pk}/change/"
    page = web.get(url)
    assert page.status_code == 200 and b'name="is_superuser"' not in page.content

    saved = web.post(url, change_form(me, is_superuser="on"))
    assert saved.status_code == 302  # the form saves, the flag is not a field for this user
    assert not reload(me).is_superuser

    beyond = Permission.objects.get(codename="delete_user")  # the admin role lacks it
    refused = web.post(url, change_form(me, user_permissions=[beyond.pk]))
    assert refused.status_code == 200 and b"Select a valid choice" in refused.content
    assert not reload(me).user_permissions.exists()

    powerful, _ = Group.objects.get_or_create(name="sec-powerful")
    powerful.permissions.set([beyond])
    refused = web.post(url, change_form(me, groups=[powerful.pk]))
    assert refused.status_code == 200 and b"Select a valid choice" in refused.content
    assert list(reload(me).groups.values_list("name", flat=True)) == ["admin"]
    assert not reload(me).has_perm("auth.delete_user")


def test_the_admin_role_cannot_change_a_superuser_or_its_password() -> None:
    me = account("role-admin", "admin")
    root = account("sec-root", None, is_superuser=True, is_staff=True)
    web = logged_in(me)
    change, password = (
        f"/admin/auth/user/{root.pk}/change/",
        f"/admin/auth/user/{root.pk}/password/",
    )
    assert b'name="username"' not in web.get(change).content  # read-only at most
    posted = web.post(change, change_form(root, is_superuser="", is_active=""))
    assert posted.status_code == 403
    assert web.get(password).status_code == 403
    new = {"password1": "another-strong-passphrase-9", "password2": "another-strong-passphrase-9"}
    assert web.post(password, {**new, "usable_password": "true"}).status_code == 403
    root = reload(root)
    assert root.is_superuser and root.is_active and root.check_password(STRONG)


def test_the_admin_role_manages_lesser_users_and_a_superuser_can_do_everything() -> None:
    me = account("role-admin", "admin")
    viewer = account("sec-managed", "viewer")
    operator = Group.objects.get(name="operator")
    web = logged_in(me)
    moved = web.post(
        f"/admin/auth/user/{viewer.pk}/change/", change_form(viewer, groups=[operator.pk])
    )
    assert moved.status_code == 302
    assert list(reload(viewer).groups.values_list("name", flat=True)) == ["operator"]
    password = f"/admin/auth/user/{viewer.pk}/password/"
    weak = web.post(
        password, {"password1": "12345678", "password2": "12345678", "usable_password": "true"}
    )
    assert weak.status_code == 200 and b"entirely numeric" in weak.content  # validators apply
    strong = "another-strong-passphrase-9"
    done = web.post(password, {"password1": strong, "password2": strong, "usable_password": "true"})
    assert done.status_code == 302 and reload(viewer).check_password(strong)

    root = logged_in(account("sec-root", None, is_superuser=True, is_staff=True))
    promoted = root.post(f"/admin/auth/user/{me.pk}/change/", change_form(me, is_superuser="on"))
    assert promoted.status_code == 302 and reload(me).is_superuser
    assert root.get(f"/admin/auth/user/{me.pk}/password/").status_code == 200
