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
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
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
    assert "no-store" in response["Cache-Control"]  # the lockout page is not cached either
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


def test_the_admin_role_cannot_touch_a_user_holding_more_than_it_does() -> None:
    """More power held through a group or given directly: either puts the account out of
    the admin role's reach (it could otherwise disable or delete its betters)."""
    from django.contrib.auth.models import Permission

    beyond = Permission.objects.get(codename="delete_user")  # the admin role lacks it
    powerful, _ = Group.objects.get_or_create(name="sec-powerful")
    powerful.permissions.set([beyond])
    by_group = account("sec-by-group", None, is_staff=True)
    by_group.groups.set([powerful])
    directly = account("sec-directly", None, is_staff=True)
    directly.user_permissions.set([beyond])
    web = logged_in(account("role-admin", "admin"))
    for stronger in (by_group, directly):
        change = f"/admin/auth/user/{stronger.pk}/change/"
        assert web.post(change, change_form(stronger, is_active="")).status_code == 403
        delete = f"/admin/auth/user/{stronger.pk}/delete/"
        assert web.post(delete, {"post": "yes"}).status_code == 403
        assert reload(stronger).is_active


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


# --- security headers ----------------------------------------------------------------------


@pytest.fixture
def console_app(make_engine, db):  # type: ignore[no-untyped-def]
    """An engine database with a finished workflow (steps, a sleep, a deadline) and a waiting
    one, and the console aimed at it."""
    import tests.console.console_site as site

    engine = make_engine("security-app")

    @engine.step(name="sec.step")
    def step(x):
        return {"x": x}

    @engine.workflow(name="sec.flow")
    def flow(ctx, x):
        step(x)
        ctx.sleep(0.01)
        return step(x + 1)

    @engine.workflow(name="sec.wait")
    def wait(ctx):
        step(0)
        return ctx.recv("go", timeout=30)

    engine.launch()
    engine.start_workflow(flow, 1, workflow_id="sec-done", timeout=600).get_result(timeout=20)
    engine.start_workflow(wait, workflow_id="sec-waiting")
    site.point_engine_database(db)
    yield engine
    engine.send("sec-waiting", "done", "go")
    connections["waymark"].close()


class InlineCode(__import__("html.parser").parser.HTMLParser):
    """Collects what a strict CSP would block: inline <script>/<style>, style="" and on*=
    attributes, and htmx features that need eval (trigger filters, hx-on)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            self.scripts += 1
            if not names.get("src"):
                self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name == "style" or name.startswith(("on", "hx-on")):
                self.found.append(f"{tag} {name}={value!r}")
            if name == "hx-trigger" and value and "[" in value:
                self.found.append(f"{tag} trigger filter {value!r}")


def inline_code(html: bytes) -> tuple[list[str], int]:
    parser = InlineCode()
    parser.feed(html.decode())
    return parser.found, parser.scripts


# DEBUG off in-process, without collectstatic: WhiteNoise notes the missing STATIC_ROOT.
@pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
def test_pages_carry_a_strict_csp_and_no_inline_code(console_app) -> None:
    managed = account("sec-viewer", "viewer")
    viewer = logged_in(managed)
    boss = logged_in(account("sec-boss", "admin"))
    root = logged_in(account("sec-root", None, is_superuser=True, is_staff=True))
    pages = [
        (WebClient(), "/accounts/login/"),
        (viewer, "/"),
        (viewer, "/workflows/"),
        (viewer, "/workflows/sec-done/"),
        (viewer, "/workflows/sec-waiting/"),
        (viewer, "/workflows/sec-done/steps/1/"),
        (viewer, "/queues/"),
        (viewer, "/schedules/"),
        (viewer, "/versions/"),
        (viewer, "/workflows/no-such-id/"),  # 404 page
        (viewer, "/workflows/?status=NOPE"),  # 400 page
        (boss, "/audit/"),
        (boss, "/workflows/sec-waiting/cancel/"),  # a confirmation form
        (boss, "/admin/"),
        (boss, f"/admin/auth/user/{managed.pk}/change/"),
        (root, "/admin/auth/user/"),
    ]
    for web, path in pages:
        with override_settings(DEBUG=False):  # the real 404 page, not Django's debug page
            response = web.get(path)
        assert response.status_code in (200, 400, 404), (path, response.status_code)
        policy = response["Content-Security-Policy"]
        for directive in (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
        ):
            assert directive in policy, (path, directive)
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        found, scripts = inline_code(response.content)
        assert found == [], (path, found)
        if not path.startswith("/admin/"):
            assert scripts >= 2, path  # htmx and console.js, both from files
    detail = viewer.get("/workflows/sec-done/").content
    assert b'class="bar' in detail and b"data-left=" in detail and b"data-width=" in detail
    assert b'<meta name="htmx-config"' in detail and b'"allowEval":false' in detail


def test_authenticated_responses_and_the_login_page_are_never_cached(console_app) -> None:
    viewer = logged_in(account("sec-viewer", "viewer"))
    boss = logged_in(account("sec-boss", "admin"))
    responses = {
        "login page": WebClient().get("/accounts/login/"),
        "admin login page": WebClient().get("/admin/login/"),
        "page": viewer.get("/workflows/sec-done/"),
        "htmx fragment": viewer.get(
            "/workflows/sec-waiting/?fragment=live", HTTP_HX_REQUEST="true"
        ),
        "csv": boss.get("/audit/?format=csv"),
        "admin page": boss.get("/admin/"),
    }
    for what, response in responses.items():
        assert response.status_code == 200, what
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert {"private", "no-store"} <= directives, (what, response["Cache-Control"])
    fragment = responses["htmx fragment"].content
    assert fragment.startswith(b'<div id="live"') and b"<html" not in fragment
    assert responses["csv"]["Content-Type"].startswith("text/csv")


def production(**env: str) -> dict[str, str]:
    """The environment of a production console (DEBUG off) on a throwaway database."""
    return {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "test-only-" + "s" * 50,
        "ALLOWED_HOSTS": "console.example.com",
        **env,
    }


def test_forwarded_proto_is_believed_only_behind_a_proxy(tmp_path) -> None:
    probe = (
        "import django; django.setup();"
        "from django.test import Client, RequestFactory;"
        "h = dict(HTTP_HOST='console.example.com', HTTP_X_FORWARDED_PROTO='https');"
        "r = Client().get('/accounts/login/', **h);"
        "print(r.status_code, r.get('Location', ''), RequestFactory().get('/', **h).is_secure())"
    )
    db = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'p.sqlite3'}",
        "WAYMARK_STATIC_ROOT": str(tmp_path / "static"),
    }

    def run(*command: str, **env: str) -> str:
        done = subprocess.run(
            [sys.executable, *(command or ("-c", probe))],
            cwd=ROOT,
            env=production(**db, DJANGO_SETTINGS_MODULE="console.settings", **env),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    run("manage.py", "collectstatic", "--noinput")  # DEBUG off: pages need the manifest
    # Without WAYMARK_BEHIND_PROXY the header is a client's claim: still redirected to HTTPS.
    refused = "301 https://console.example.com/accounts/login/ False"
    assert run() == refused
    assert run(WAYMARK_BEHIND_PROXY="0") == refused
    # Behind the proxy that sets it, the request is HTTPS already: the page renders.
    assert run(WAYMARK_BEHIND_PROXY="1") == "200  True"


# --- error logging -------------------------------------------------------------------------


# DEBUG off in-process, without collectstatic: WhiteNoise notes the missing STATIC_ROOT.
@pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
@override_settings(ROOT_URLCONF="tests.console.raising_urls", DEBUG=False)
def test_a_server_error_is_logged_with_its_traceback() -> None:
    import unittest

    web = WebClient(raise_request_exception=False)
    with unittest.TestCase().assertLogs("django.request", "ERROR") as logs:
        response = web.get("/boom/")
    assert response.status_code == 500 and b"boom-marker" not in response.content
    (record,) = [r for r in logs.records if r.levelname == "ERROR"]
    assert record.getMessage() == "Internal Server Error: /boom/"
    assert record.exc_info and record.exc_info[0] is RuntimeError


def test_with_debug_off_server_errors_reach_stderr_with_the_traceback(tmp_path) -> None:
    probe = (
        "import django; django.setup();"
        "from django.test import Client, override_settings;"
        "override_settings(ROOT_URLCONF='tests.console.raising_urls').enable();"
        "r = Client(raise_request_exception=False).get("
        "'/boom/', HTTP_HOST='console.example.com', secure=True);"
        "print(r.status_code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=production(
            DATABASE_URL=f"sqlite:///{tmp_path / 'p.sqlite3'}",
            DJANGO_SETTINGS_MODULE="console.settings",
        ),
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "500", done.stderr
    assert "ERROR django.request: Internal Server Error: /boom/" in done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert "RuntimeError: boom-marker: a bug in a view" in done.stderr
