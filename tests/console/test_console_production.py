"""The production recipe, for real: gunicorn serving the console with DEBUG off on a fresh
SQLite file, static files through WhiteNoise, behind a (simulated) HTTPS proxy.

The README's "Running in production" section is what this test runs: migrate, collectstatic,
createuser, `gunicorn console.wsgi` with DEBUG=0, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and
WAYMARK_BEHIND_PROXY=1 (the proxy's X-Forwarded-Proto: https is sent with every request).
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support import free_port, owns_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "gunicorn-test-passphrase-7"
pytestmark = pytest.mark.slow


class Site:
    """Plain HTTP to the server; cookies kept by hand (they are Secure-only with DEBUG off,
    which a client speaking HTTP to the proxy's backend would otherwise drop)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, proxied: bool = True
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if proxied:  # what the TLS-terminating proxy adds
            headers["X-Forwarded-Proto"] = "https"
            headers["Origin"] = f"https://127.0.0.1:{self.port}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = urlencode(form) if form is not None else None
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            content = response.read()
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, response.headers, content


@pytest.fixture
def gunicorn(tmp_path) -> Iterator[Site]:
    db_url = f"sqlite:///{tmp_path / 'console.sqlite3'}"
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DEBUG": "0",
        "SECRET_KEY": "gunicorn-test-only-" + "k" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": db_url,
        "WAYMARK_DATABASE_URL": db_url,
        "WAYMARK_STATIC_ROOT": str(tmp_path / "static"),
        "WAYMARK_BEHIND_PROXY": "1",
    }
    for command in (
        ["migrate", "-v", "0"],
        ["collectstatic", "--noinput", "-v", "0"],
        ["createuser", "ops", "--role", "operator"],
    ):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**env, "WAYMARK_NEW_USER_PASSWORD": PASSWORD},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (command, done.stderr)
    from engine import Client

    with Client(db_url) as client:  # the engine's tables, as a worker's first launch makes them
        client.list_workflows(limit=1)

    for _attempt in range(5):  # another process may take the free port before gunicorn binds
        port = free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        with log.open("wb") as sink:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "console.wsgi",
                    "--workers",
                    "2",
                    "--bind",
                    f"127.0.0.1:{port}",
                ],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            if wait_until_ready(server, port, log):
                yield Site(port)
                return
        finally:
            server.terminate()
            server.wait(timeout=30)
    pytest.fail("gunicorn found no free port in 5 attempts")


def wait_until_ready(server: subprocess.Popen[bytes], port: int, log: Path) -> bool:
    """True once the login page answers; False if the port was taken (try another); fails
    the test with the server's output if it dies or never gets ready."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "Connection in use" in log.read_text(errors="replace"):
            return False
        if server.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.returncode}:\n{log.read_text()}")
        try:
            status, _, _ = Site(port).request("GET", "/accounts/login/")
            if status == 200 and owns_port(server.pid, port):  # ours answers, not a squatter
                return True
        except OSError:
            pass  # not listening yet
        time.sleep(0.1)
    pytest.fail(f"gunicorn not ready after 60 s:\n{log.read_text()}")


def test_gunicorn_serves_the_console_and_its_static_files_with_debug_off(gunicorn) -> None:
    site = gunicorn
    status, headers, page = site.request("GET", "/accounts/login/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert "no-store" in headers["Cache-Control"]
    html = page.decode()
    css = re.search(r'<link rel="stylesheet" href="(/static/console\.[0-9a-f]{12}\.css)"', html)
    js = re.search(r'<script src="(/static/django_htmx/htmx-2\.min\.[0-9a-f]{12}\.js)"', html)
    assert css and js, html  # content-hashed names from the collectstatic manifest

    status, headers, body = site.request("GET", css.group(1))
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert "immutable" in headers["Cache-Control"] and b".timeline" in body
    status, headers, body = site.request("GET", js.group(1))
    assert status == 200 and "javascript" in headers["Content-Type"]
    assert b"htmx" in body and "immutable" in headers["Cache-Control"]

    # Sign in through the real form (CSRF token from the cookie, HTTPS origin via the proxy).
    status, headers, _ = site.request(
        "POST",
        "/accounts/login/",
        {
            "username": "ops",
            "password": PASSWORD,
            "csrfmiddlewaretoken": site.cookies["csrftoken"],
            "next": "/workflows/",
        },
    )
    assert status == 302 and headers["Location"] == "/workflows/", status
    status, headers, page = site.request("GET", "/workflows/")
    assert status == 200 and b"<h1>Workflows</h1>" in page
    assert "private" in headers["Cache-Control"] and "no-store" in headers["Cache-Control"]

    # Plain HTTP without the proxy's header is redirected to HTTPS.
    status, headers, _ = Site(site.port).request("GET", "/accounts/login/", proxied=False)
    assert status == 301 and headers["Location"].startswith("https://127.0.0.1:")
