"""The console under abuse: odd workflow IDs, huge payloads and audit records, hostile
parameters, interrupted actions. On SQLite and on Postgres engine databases."""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import quote

import pytest
from django.test import override_settings
from django.urls import reverse

from console import actions, filters
from console.models import AuditRecord
from tests.console.test_console_operate import app, start_blocked, status, user, wait_for  # noqa: F401
from tests.support import wait_until

ODD_IDS = [
    "tenant/acme/order 17",
    "a..b/../c",
    "..",
    ".",
    "bulk",
    "steps",
    "cancel",
    "100% sure?#frag&x=1",
    "ünïcødé ☃ 注文",
    "x" * 200,
]
SCRIPT = "<script>alert(1)</script>"


def links(html: str) -> set[str]:
    return set(re.findall(r'href="(/workflows/[^"?]*)"', html))


def test_every_workflow_id_works_on_every_page_and_action(app) -> None:
    engine, gate = app
    for workflow_id in ODD_IDS:
        engine.start_workflow("held", 1, workflow_id=workflow_id).get_result(timeout=20)
    web = user("operator")
    listing = web.get("/workflows/?status=SUCCESS").content.decode()
    found = links(listing)
    for workflow_id in ODD_IDS:
        path = reverse("workflow_detail", args=[workflow_id])  # as the list links it
        assert path in found, (workflow_id, path)
        page = web.get(path)
        assert page.status_code == 200, (workflow_id, page.status_code)
        assert page.context["workflow"].workflow_uuid == workflow_id
        assert web.get(path + "steps/1/").status_code == 200
        assert web.get(path + "steps/").status_code == 200
        assert json.loads(web.get(path + "input.json").content)["positionalArgs"] == [1]
        assert web.get(path + "fork/").status_code == 200
        forked = web.post(path + "fork/", {"step": "2", "reason": "odd ids"})
        assert forked.status_code == 302
    # Bulk actions carry the IDs in the form, not the path.
    gate.clear()
    for workflow_id in ODD_IDS[:3]:
        engine.start_workflow("held", 2, workflow_id=workflow_id + "/held")
        wait_for(workflow_id + "/held", "PENDING")
    held = [i + "/held" for i in ODD_IDS[:3]]
    web.post("/bulk/", {"action": "cancel", "ids": held, "confirm": "1"})
    wait_until(lambda: {status(i) for i in held} == {"CANCELLED"}, what="the bulk cancel")
    gate.set()


def test_a_nul_or_huge_step_number_in_a_path_is_a_404_not_a_500(app) -> None:
    engine, _ = app
    engine.start_workflow("held", 1, workflow_id="plain").get_result(timeout=20)
    web = user("operator")
    assert web.get("/workflows/a%00b/").status_code == 404
    assert web.get("/workflows/plain/steps/99999999999999999999999/").status_code == 404
    assert web.get("/workflows/plain/steps/2147483648/").status_code == 404
    assert web.get("/workflows/plain/nothing.json").status_code == 404


def test_huge_payloads_render_bounded_with_a_download(app, make_engine) -> None:
    engine = make_engine("payload-app")
    nested: object = ["y" * 1_800_000]
    for _ in range(40):
        nested = [nested]

    @engine.step(name="big")
    def big(n):
        return "z" * 1_900_000

    @engine.workflow(name="huge")
    def huge(ctx, payload):
        for n in range(5):
            big(n)
        return "done"

    engine.launch()
    engine.start_workflow(huge, nested, workflow_id="huge-1").get_result(timeout=60)
    web = user("viewer")
    page = web.get("/workflows/huge-1/")
    assert page.status_code == 200
    assert len(page.content) < 300_000  # not the 80 MB of the whole input pretty-printed
    assert b"Download it whole" in page.content
    whole = web.get("/workflows/huge-1/input.json")
    assert json.loads(whole.content)["positionalArgs"] == [nested]
    assert whole["Content-Disposition"].startswith("attachment")
    step = web.get("/workflows/huge-1/steps/1/")
    assert len(step.content) < 300_000 and b"Download it whole" in step.content
    assert len(json.loads(web.get("/workflows/huge-1/steps/1/output.json").content)) == 1_900_000
    live = web.get("/workflows/huge-1/?fragment=live", HTTP_HX_REQUEST="true")
    assert len(live.content) < 300_000


def test_events_and_children_are_capped_with_load_more(app, make_engine) -> None:
    engine = make_engine("events-app")

    @engine.workflow(name="chatty")
    def chatty(ctx):
        for n in range(120):
            ctx.set_event(f"k{n:03d}", {"n": n, "html": SCRIPT})
        return "ok"

    engine.launch()
    engine.start_workflow(chatty, workflow_id="chatty-1").get_result(timeout=60)
    web = user("viewer")
    page = web.get("/workflows/chatty-1/")
    assert len(page.context["events"]) == 50
    assert SCRIPT.encode() not in page.content
    more = page.context["events_next"]
    assert more == "k049"
    second = web.get(f"/workflows/chatty-1/events/?after={more}", HTTP_HX_REQUEST="true")
    assert [e.key for e in second.context["events"]][:2] == ["k050", "k051"]
    third = web.get(f"/workflows/chatty-1/events/?after={second.context['events_next']}")
    assert [e.key for e in third.context["events"]][-1] == "k119"
    assert third.context["events_next"] == ""


def test_a_ten_thousand_workflow_audit_record_renders_compactly(app) -> None:
    engine, _ = app
    engine.start_workflow("held", 1, workflow_id="audited").get_result(timeout=20)
    ids = ["audited"] + [f"gone-{n:05d}" for n in range(9_999)]
    record = actions.intend(actions.Actor("bulk-bot"), "bulk_cancel", ids, "cleanup", "id=gone-")
    actions.complete(record, actions.Outcome(True, "10000 cancelled"))
    admin = user("admin")
    for path in ("/audit/", "/workflows/audited/"):
        page = admin.get(path)
        assert page.status_code == 200
        assert len(page.content) < 100_000
        text = page.content.decode()
        assert "and 9995 more" in text
        assert "NOT FOUND → NOT FOUND \u00d7 9999" in text
        assert "SUCCESS → SUCCESS" in text


def test_actions_record_their_intent_before_acting(app, monkeypatch) -> None:
    engine, gate = app
    start_blocked(engine, gate, "intent-1")
    seen: list[AuditRecord] = []
    real = actions.one

    def spy(action, workflow_id, step=None, version=None, **kwargs):
        seen.extend(AuditRecord.objects.filter(targets__workflow_id=workflow_id))
        return real(action, workflow_id, step, version, **kwargs)

    monkeypatch.setattr(actions, "one", spy)
    user("operator").post("/workflows/intent-1/cancel/", {"reason": "runaway"})
    assert len(seen) == 1 and seen[0].completed_at is None  # written before the engine acted
    assert seen[0].status_before == {"intent-1": "PENDING"} and seen[0].reason == "runaway"
    done = AuditRecord.objects.get(pk=seen[0].pk)
    assert done.completed_at is not None and done.ok is True
    assert done.status_after == {"intent-1": "CANCELLED"}
    assert AuditRecord.objects.complete(done.pk, outcome="x", ok=False, status_after={}) == 0
    gate.set()


def test_audit_csv_neutralises_formulas(app) -> None:
    engine, gate = app
    start_blocked(engine, gate, "=HYPERLINK(1)")
    operator = user("operator")
    operator.post(f"/workflows/{quote('=HYPERLINK(1)')}/cancel/", {"reason": "@SUM(A1) +1 -2"})
    export = user("admin").get("/audit/?format=csv")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["reason"] == "'@SUM(A1) +1 -2"
    assert row["workflow_ids"] == "'=HYPERLINK(1)"
    for cell in rows[1]:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    gate.set()


HOSTILE = [
    "",
    " ",
    "0",
    "-1",
    "1.5",
    "²",
    "٣",
    "99999999999999999999999",
    "2147483648",
    "\x00",
    "a\x00b",
    "%",
    "%00",
    "../..",
    SCRIPT,
    "' OR 1=1 --",
    "a" * 5000,
    "0001-01-01T00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2026-13-45",
    "1~x",
    "²~x",
    "9" * 5000 + "~x",
    "~",
    "🦆",
    "\r\n",
    "NaN",
    "[]",
]
GET_PARAMS = {
    "/": ["window"],
    "/workflows/": [
        "status",
        "name",
        "queue",
        "version",
        "executor",
        "id",
        "parent",
        "since",
        "after",
        "before",
        "cursor",
        "back",
        "internal",
        "v",
    ],
    "/workflows/fz/": ["fragment", "v"],
    "/workflows/fz/steps/": ["from"],
    "/workflows/fz/events/": ["after"],
    "/workflows/fz/messages/": ["after"],
    "/workflows/fz/fork/": ["step"],
    "/audit/": ["actor", "action", "target", "since", "format"],
    "/queues/": ["internal"],
    "/schedules/": ["x"],
    "/versions/": ["x"],
}
POST_PARAMS = {
    "/workflows/fz/fork/": {"step": "2", "reason": "r", "version": ""},
    "/bulk/": {
        "action": "cancel",
        "ids": "nobody",
        "reason": "r",
        "query": "",
        "confirm": "1",
        "version": "",
    },
    "/views/": {"name": "n", "query": "", "shared": ""},
}


@pytest.mark.timeout(900)  # about 1,500 requests: seconds alone, minutes on a loaded machine
def test_no_parameter_value_makes_a_500(app) -> None:
    """Every parameter of every page, with a fixed list of hostile values: never a 500, and
    the script tag is always escaped."""
    engine, _ = app
    engine.start_workflow("held", 1, workflow_id="fz").get_result(timeout=20)
    web = user("admin")
    web.raise_request_exception = False
    failures = []

    def check(method: str, path: str, response) -> None:  # type: ignore[no-untyped-def]
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if response.status_code >= 500 or SCRIPT.encode() in body:
            failures.append((method, path, response.status_code))

    for path, names in GET_PARAMS.items():
        for name in names:
            for value in HOSTILE:
                check("GET", f"{path}?{name}={value[:20]!r}", web.get(path, {name: value}))
    for path, form in POST_PARAMS.items():
        for name in form:
            for value in HOSTILE:
                check(
                    "POST", f"{path} {name}={value[:20]!r}", web.post(path, {**form, name: value})
                )
    for value in HOSTILE:
        encoded = quote(value, safe="")
        if encoded:
            check("GET", f"id {value[:20]!r}", web.get(f"/workflows/{encoded}/"))
            check("GET", f"step {value[:20]!r}", web.get(f"/workflows/fz/steps/{encoded}/"))
    assert not failures, failures[:20]
    assert status("fz") == "SUCCESS"


def test_dates_outside_the_epoch_range_are_a_400_with_the_reason(app) -> None:
    web = user("viewer")
    for query in ("after=0001-01-01T00:00%2B14:00", "before=9999-12-31T23:59:59-14:00"):
        page = web.get(f"/workflows/?{query}")
        assert page.status_code == 400
        assert (
            b"must be between 1970 and 9999" in page.content or b"not a date-time" in page.content
        )
    assert filters.parse_cursor("12~a~b") == (12, "a~b")
    with pytest.raises(filters.BadFilterError):
        filters.parse_cursor("²~x")


@pytest.mark.parametrize("behind_proxy", [False, True])
def test_the_audit_records_the_client_address_a_proxy_reports(app, behind_proxy) -> None:
    engine, gate = app
    start_blocked(engine, gate, "addr-1")
    with override_settings(WAYMARK_BEHIND_PROXY=behind_proxy):
        user("operator").post(
            "/workflows/addr-1/cancel/",
            {"reason": "r"},
            REMOTE_ADDR="10.0.0.9",
            HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7",
        )
    record = AuditRecord.objects.get(action="cancel")
    assert record.client_address == ("203.0.113.7" if behind_proxy else "10.0.0.9")
    gate.set()
