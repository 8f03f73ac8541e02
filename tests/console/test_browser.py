"""The console in a real browser (Playwright driving Debian's Chromium, headless).

A real `runserver` and `runworker` on a fresh SQLite file: log in, open the list, filter,
open a workflow and see its timeline, and watch a running workflow finish live (htmx polling).
Screenshots go to tests/artifacts/. Needs /usr/bin/chromium; CI installs it (.ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support import serve

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("browser")
    db_url = f"sqlite:///{home / 'console.sqlite3'}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "WAYMARK_DATABASE_URL": db_url,
        "WAYMARK_APP": "tests.apps.workerapp:build",
        "WAYMARK_APP_NAME": "workerapp",
        "WAYMARK_TEST_LEDGER": str(home / "ledger.txt"),
        "WAYMARK_TEST_SCHEDULE": "0 0 1 1 *",
        "DJANGO_SETTINGS_MODULE": "console.settings",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    for name, role in (("operator", "operator"), ("boss", "admin"), ("watcher", "viewer")):
        subprocess.run(
            [sys.executable, "manage.py", "createuser", name, "--role", role],
            cwd=ROOT,
            env={**env, "WAYMARK_NEW_USER_PASSWORD": "browser-pass-1"},
            check=True,
            capture_output=True,
        )
    server, port = serve(
        lambda port: [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        home / "runserver.log",
        cwd=ROOT,
        env=env,
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--executor-id", "browser"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [server, worker]
    base = f"http://127.0.0.1:{port}"
    from engine import Client

    client = Client(db_url)
    try:
        yield base, client
    finally:
        client.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)


def test_operator_browses_filters_and_watches_a_workflow_finish_live(console) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, client = console
    for i in range(3):
        client.start_workflow("tracked", i, queue="limited")
    running = client.start_workflow("slowsteps", 150).workflow_id  # about 15 s of steps
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        blocked: list[str] = []  # anything the Content-Security-Policy refused
        page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else 0)
        page.goto(f"{base}/workflows/")
        page.fill("input[name=username]", "watcher")
        page.fill("input[name=password]", "browser-pass-1")
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Workflows")
        expect(page.locator("#workflow-rows tr")).to_have_count(4, timeout=10_000)
        page.screenshot(path=ARTIFACTS / "list.png", full_page=True)

        page.fill("input[name=name]", "slowsteps")
        page.click("form.filters button[type=submit]")
        expect(page).to_have_url(re.compile(r"/workflows/\?name=slowsteps&"))
        expect(page.locator("#workflow-rows tr")).to_have_count(1)
        page.screenshot(path=ARTIFACTS / "list-filtered.png", full_page=True)

        page.click(f"a[href='/workflows/{running}/']")
        expect(page.locator("#timeline")).to_be_visible()
        expect(page.locator("#workflow-header .status")).to_have_text("PENDING")
        page.screenshot(path=ARTIFACTS / "detail-running.png", full_page=True)
        # No reload: htmx polls the header and timeline until the workflow finishes.
        expect(page.locator("#workflow-header .status")).to_have_text("SUCCESS", timeout=60_000)
        assert page.locator("#timeline .bar").count() == 150
        # Geometry comes as data attributes and console.js applies it (no inline styles).
        assert page.locator("#timeline .bar").last.evaluate("e => e.style.width").endswith("%")
        page.screenshot(path=ARTIFACTS / "detail-finished.png", full_page=True)

        for path in ("/", "/queues/", "/schedules/", "/versions/"):
            page.goto(base + path)
            expect(page.locator("h1")).to_be_visible()
            page.screenshot(path=ARTIFACTS / f"page{path.replace('/', '-') or '-'}.png")
        browser.close()
    assert blocked == []


def login(page, base: str, name: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "browser-pass-1")
    page.click("button[type=submit]")


def test_operator_cancels_and_resumes_admin_audits_viewer_cannot_act(console) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, client = console
    workflow_id = client.start_workflow("slowsteps", 100).workflow_id  # about 10 s of steps
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        login(page, base, "operator")
        page.goto(f"{base}/workflows/{workflow_id}/")
        expect(page.locator("#workflow-header .status")).to_have_text("PENDING", timeout=15_000)
        page.click("text=Cancel…")
        expect(page.locator(".confirm .notice")).to_contain_text("next step boundary")
        page.fill("textarea[name=reason]", "stuck in a loop, see INC-7")
        page.screenshot(path=ARTIFACTS / "cancel-confirm.png")
        page.click(".confirm button[type=submit]")
        expect(page.locator("p.notice.ok")).to_contain_text("Cancel: cancelled")
        expect(page.locator("#workflow-header .status")).to_have_text("CANCELLED")
        page.screenshot(path=ARTIFACTS / "cancelled.png", full_page=True)
        page.click("text=Resume…")
        page.fill("textarea[name=reason]", "fixed upstream")
        page.click(".confirm button[type=submit]")
        expect(page.locator("p.notice.ok")).to_contain_text("Resume: resumed")
        expect(page.locator("#workflow-header .status")).to_have_text("SUCCESS", timeout=60_000)
        expect(page.locator("#audit-strip")).to_contain_text("stuck in a loop, see INC-7")
        page.screenshot(path=ARTIFACTS / "resumed-success.png", full_page=True)

        login(page, base, "boss")
        page.goto(f"{base}/audit/?target={workflow_id}")
        rows = page.locator("#audit-strip tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("resume")
        expect(rows.nth(1)).to_contain_text("cancel")
        expect(rows.nth(1)).to_contain_text("operator")
        page.screenshot(path=ARTIFACTS / "audit.png", full_page=True)

        login(page, base, "watcher")
        page.goto(f"{base}/workflows/{workflow_id}/")
        expect(page.locator("#workflow-header")).to_be_visible()
        expect(page.locator("nav.actions")).to_have_count(0)
        expect(page.locator("text=Cancel…")).to_have_count(0)
        expect(page.locator("text=Fork…")).to_have_count(0)
        page.goto(f"{base}/workflows/")
        expect(page.locator("form#bulk")).to_have_count(0)
        page.screenshot(path=ARTIFACTS / "viewer-detail.png", full_page=True)
        browser.close()
