"""Forking from the console with an edited input (issue 12): the input shown as JSON to edit,
bad JSON refused before anything is written, the difference shown and confirmed, the fork run
with the new input (earlier steps still copied), the audit record keeping input and fork ID."""

from __future__ import annotations

import re

from console.models import AuditRecord, Step, Workflow
from engine import Client
from tests.console.test_console_operate import app, user, wait_for  # noqa: F401


def finished(engine, workflow_id: str, x: int = 21) -> None:
    engine.start_workflow("held", x, workflow_id=workflow_id)
    wait_for(workflow_id, "SUCCESS")


def test_the_fork_page_shows_the_input_as_json_to_edit(app) -> None:
    engine, _ = app
    finished(engine, "fi-1", 21)
    page = user("operator").get("/workflows/fi-1/fork/")
    body = page.content.decode()
    assert page.status_code == 200
    match = re.search(r'<textarea id="fork-input" name="input"[^>]*>(.*?)</textarea>', body, re.S)
    assert match and match[1].strip() == "21"
    assert "style=" not in body  # CSP: no inline styles


def test_bad_json_is_refused_with_the_reason_and_nothing_is_written(app) -> None:
    engine, _ = app
    finished(engine, "fi-2")
    before = Workflow.objects.count()
    response = user("operator").post(
        "/workflows/fi-2/fork/", {"step": "2", "input": '{"a": <script>', "reason": "x"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "not valid JSON" in body and "line 1, column 7" in body
    assert "&lt;script&gt;" in body and "<script>" not in body.split("</textarea>")[0][-40:]
    assert Workflow.objects.count() == before
    assert AuditRecord.objects.count() == 0


def test_an_edited_input_is_diffed_then_confirmed_and_the_fork_uses_it(app, db) -> None:
    engine, _ = app
    finished(engine, "fi-3", 21)
    web = user("operator")
    preview = web.post("/workflows/fi-3/fork/", {"step": "2", "input": "5", "reason": "fix"})
    assert preview.status_code == 200
    body = preview.content.decode()
    assert '<span class="diff-remove">-21</span>' in body
    assert '<span class="diff-add">+5</span>' in body
    assert Workflow.objects.filter(forked_from="fi-3").count() == 0  # nothing written yet
    previewed = re.search(r'name="previewed" value="([0-9a-f]+)"', body)
    assert previewed
    # A confirmation for another text than the one previewed shows the difference again.
    again = web.post(
        "/workflows/fi-3/fork/", {"step": "2", "input": "6", "previewed": previewed[1]}
    )
    assert again.status_code == 200 and Workflow.objects.filter(forked_from="fi-3").count() == 0
    done = web.post(
        "/workflows/fi-3/fork/",
        {"step": "2", "input": "5", "previewed": previewed[1], "reason": "fix"},
    )
    assert done.status_code == 302
    fork_id = done["Location"].split("/")[2]
    wait_for(fork_id, "SUCCESS")
    with Client(db.url, schema=db.schema) as client:
        status = client.get_workflow_status(fork_id)
        assert status is not None and status.input == 5 and status.output == 10  # 5 * 2
        steps = client.list_steps(fork_id)
    # Step 1 was copied from the original (its output is the original's 21), not re-run.
    assert steps[0].output == 21
    original = Step.objects.get(workflow_uuid="fi-3", function_id=1)
    assert steps[0].started_at is not None
    assert int(steps[0].started_at.timestamp() * 1000) == original.started_at_epoch_ms
    (record,) = AuditRecord.objects.filter(action="fork")
    assert fork_id in record.outcome and "with a new input: 5" in record.outcome
    assert {t.workflow_id for t in record.targets.all()} == {"fi-3", fork_id}


def test_an_unchanged_input_forks_at_once_with_the_original_input(app, db) -> None:
    engine, _ = app
    finished(engine, "fi-4", 21)
    done = user("operator").post("/workflows/fi-4/fork/", {"step": "1", "input": " 21 "})
    assert done.status_code == 302
    fork_id = done["Location"].split("/")[2]
    wait_for(fork_id, "SUCCESS")
    assert Workflow.objects.get(workflow_uuid=fork_id).record.input == 21
    (record,) = AuditRecord.objects.filter(action="fork")
    assert "new input" not in record.outcome
