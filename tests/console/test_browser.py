"""The console in a real browser (Playwright driving Debian's Chromium, headless).

A real `runserver` and `runworker` on a fresh SQLite file: log in, open the list, filter,
open a workflow and see its timeline, and watch a running workflow finish live (htmx polling).
Screenshots go to tests/artifacts/. Needs /usr/bin/chromium; CI installs it (.ci/run).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

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


def csp_watch(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Messages of anything the Content-Security-Policy refused on ``page``."""
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else 0)
    return blocked


def login(page, base: str, name: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "browser-pass-1")
    page.click("button[type=submit]")


def test_operator_cancels_and_resumes_admin_audits_viewer_cannot_act(console) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, client = console
    # Blocked on a message until the test sends it: still PENDING however slow the machine.
    workflow_id = client.start_workflow("gated", 5).workflow_id
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
        client.send(workflow_id, "go", "go")
        expect(page.locator("#workflow-header .status")).to_have_text("SUCCESS", timeout=60_000)
        expect(page.locator("#audit-strip")).to_contain_text("stuck in a loop, see INC-7")
        # One live view: after the action everything on the page agrees with the new state,
        # without a reload (only Fork is left; the steps table has every step the timeline has).
        expect(page.locator("nav.actions a")).to_have_text(["Fork…"])
        steps = int(re.search(r"\((\d+)\)", page.locator("#steps h2").inner_text())[1])
        assert steps >= 10  # ten slow steps plus the message wait's own
        expect(page.locator("#steps-head tr")).to_have_count(steps)
        assert page.locator("#timeline .bar").count() >= 10
        expect(page.locator("#now")).to_have_count(0)  # finished: nothing "now"
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


def test_a_slash_id_end_to_end_fork_lineage_and_a_live_fork(console) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, client = console
    source = "tenant/acme/order 17"
    client.start_workflow("slowsteps", 3, workflow_id=source).get_result(timeout=60)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        blocked = csp_watch(page)
        login(page, base, "operator")
        page.goto(f"{base}/workflows/?name=slow")  # a prefix of the name
        page.get_by_role("link", name=source).click()
        expect(page.locator("#workflow-header .id")).to_contain_text(source)
        expect(page.locator("#workflow-header .status")).to_have_text("SUCCESS")
        page.click("text=Fork…")
        page.select_option("select[name=step]", "2")
        page.fill("textarea[name=reason]", "replay from step 2")
        page.click(".confirm button[type=submit]")
        expect(page.locator("p.notice.ok")).to_contain_text("Fork: forked into")
        # The fork links back, marks its copied step, and finishes live (no reload).
        expect(page.locator("a.fork-source")).to_have_text(source)
        expect(page.locator("#workflow-header .status")).to_have_text("SUCCESS", timeout=60_000)
        expect(page.locator("#steps-head .copied")).to_have_count(1)
        expect(page.locator("#steps-head tr").first.locator(".copied")).to_have_count(1)
        expect(page.locator("nav.actions a")).to_have_text(["Fork…"])
        expect(page.locator("#audit-strip")).to_contain_text("replay from step 2")
        fork_url = page.url
        page.screenshot(path=ARTIFACTS / "fork.png", full_page=True)
        page.click("a.fork-source")
        expect(page.locator("a.fork-link")).to_have_count(1)
        page.click("a.fork-link")
        expect(page).to_have_url(fork_url)
        browser.close()
    assert blocked == []


def no_overlap(boxes: list[dict[str, float]]) -> bool:
    ordered = sorted(boxes, key=lambda b: b["x"])
    return all(a["x"] + a["width"] <= b["x"] + 0.5 for a, b in itertools.pairwise(ordered))


@pytest.mark.parametrize("width", [390, 1400, 2560])
def test_pages_fit_from_a_phone_to_a_wide_screen(console, width) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, client = console
    showcase = client.start_workflow("showcase", 1, workflow_id=f"showcase/{width}").workflow_id
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        blocked = csp_watch(page)
        login(page, base, "boss")
        detail = f"{base}/workflows/{quote(quote(showcase, safe=''), safe='')}/"
        page.goto(detail)
        expect(page.locator("#now")).to_contain_text("sleeping until", timeout=30_000)
        page.reload()  # the full page, now that it sleeps (the live fragment is the same)
        expect(page.locator("#timeline .wake")).to_contain_text("wakes")
        for path in ("/workflows/", detail.removeprefix(base), "/queues/", "/versions/", "/"):
            page.goto(base + path)
            expect(page.locator("h1").first).to_be_visible()
            # Nothing widens the page: tables scroll inside their box, the nav wraps.
            wide = page.evaluate(
                "[...document.querySelectorAll('body *')].filter(e => "
                "e.getBoundingClientRect().right > innerWidth + 1 && !e.closest('.table-scroll'))"
                ".map(e => e.tagName + '.' + e.className).slice(0, 5)"
            )
            assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, (path, wide)
            nav = page.locator("header.top").bounding_box()
            assert nav is not None and nav["x"] + nav["width"] <= width + 1
            name = "detail" if path.startswith("/workflows/showcase") else path.strip("/")
            page.screenshot(path=ARTIFACTS / f"{width}-{name or 'overview'}.png", full_page=True)
        page.goto(detail)
        track = page.locator("#timeline .track").first.bounding_box()
        assert track is not None and track["width"] >= (200 if width < 600 else width // 2)
        axis = [page.locator("#timeline .axis span").nth(i).bounding_box() for i in range(3)]
        assert no_overlap([b for b in axis if b]), axis
        # The compressed break sits where nothing works: never over a working step's bar.
        breaks = page.locator("#timeline .break")
        assert breaks.count() >= 1
        gap = breaks.first.bounding_box()
        for bar in page.locator("#timeline .bar.kind-compute").all():
            box = bar.bounding_box()
            assert box is not None and gap is not None
            assert (
                box["x"] + box["width"] <= gap["x"] + 1 or box["x"] >= gap["x"] + gap["width"] - 1
            )
        page.screenshot(path=ARTIFACTS / f"{width}-detail-top.png")
        browser.close()
    assert blocked == []
