"""Bulk actions as durable Waymark workflows of the console's own.

A bulk cancel, resume or fork is the workflow ``waymark.console.bulk_action``, registered on
every worker's engine (console/worker.py) and started by name through ``engine.Client`` on the
console's internal queue, which every worker serves. It acts on its workflows
in chunks, one step per chunk, and publishes its progress as an event after each; the last
step writes the outcome of the audit record whose intent the web process wrote before
starting it. So a restart of the web process loses nothing (the progress page reads the
database), and a worker killed mid-way is recovered like any workflow: completed chunks are
replayed from their checkpoints, the interrupted one runs again.

Running a chunk again must not act twice: each item carries the status it had when the action
was asked for, and an item whose workflow has already moved the way the action moves it is
reported as done (cancel, resume) — a fork goes to a fork ID derived from the audit record, so
a second try finds its fork instead of making another.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from django.db import close_old_connections

from engine import Engine

WORKFLOW = "waymark.console.bulk_action"
QUEUE = "_waymark_console"  # served by every console worker; never shown as a user queue
CHUNK_STEP = "waymark.console.bulk_chunk"
FINISH_STEP = "waymark.console.bulk_finish"
PROGRESS = "progress"  # the event holding {"done", "total", "counts"}
CHUNK = 25
ACTIONS = ("cancel", "resume", "fork")
PAST = {"cancel": "cancelled", "resume": "resumed", "fork": "forked"}


def workflow_id(record_id: int) -> str:
    """The bulk workflow of an audit record: one per record, so starting it twice runs one."""
    return f"{WORKFLOW}-{record_id}"


def fork_id(source: str, record_id: int) -> str:
    return f"{source}-fork{record_id}"


def spec(
    action: str,
    record_id: int,
    before: dict[str, str],
    *,
    version: str | None = None,
    chunk: int = CHUNK,
) -> dict[str, Any]:
    """The bulk workflow's input: everything it needs, fixed when it starts (so a replay
    chunks the same way whatever the settings are later)."""
    if action not in ACTIONS:
        raise ValueError(f"bulk action must be one of {', '.join(ACTIONS)}, not {action!r}")
    return {
        "action": action,
        "record": record_id,
        "items": [[i, s] for i, s in before.items()],
        "version": version,
        "chunk": chunk,
    }


def outcome_kind(outcome: str) -> str:
    """``cancelled``, ``skipped: SUCCESS`` -> ``skipped``, ``forked into x`` -> ``forked``."""
    return outcome.split(":")[0].split(" ")[0]


def _act_once(action: str, workflow_id: str, before: str, record: int, version: str | None) -> str:
    # Imported when a chunk runs: the logging settings load console/worker.py, which imports
    # this module, before Django's apps are ready.
    from console import actions
    from console.models import Step, Workflow

    row = Workflow.objects.filter(workflow_uuid=workflow_id).values("status").first()
    status = row["status"] if row else "NOT FOUND"
    if not actions.allowed(action, before) or status == "NOT FOUND":
        return f"skipped: {before if status != 'NOT FOUND' else status}"
    if action == "cancel" and status == "CANCELLED":
        return "cancelled"  # this chunk ran before, up to here, and was interrupted
    if action == "resume" and status not in actions.RESUMABLE:
        return "resumed"
    if action == "fork":
        new_id = fork_id(workflow_id, record)
        if not Workflow.objects.filter(workflow_uuid=new_id, forked_from=workflow_id).exists():
            # From its last completed step: every recorded step is copied, the rest runs anew.
            steps = Step.objects.filter(workflow_uuid=workflow_id).order_by("-function_id")
            last = steps.values_list("function_id", flat=True).first()
            step = (last + 1) if last is not None else 1
            outcome = actions.one(action, workflow_id, step, version, new_workflow_id=new_id)
            if not outcome.ok:
                return outcome.message
        _target(record, new_id)  # the record shows on the fork's page too
        return f"forked into {new_id}"
    if not actions.allowed(action, status):
        return f"skipped: {status}"
    return actions.one(action, workflow_id).message


def _target(record: int, workflow_id: str) -> None:
    from console.models import AuditTarget

    if not AuditTarget.objects.filter(record_id=record, workflow_id=workflow_id).exists():
        AuditTarget.objects.create(record_id=record, workflow_id=workflow_id)


def act_on_chunk(spec: dict[str, Any], items: list[list[str]]) -> dict[str, str]:
    """One chunk: each workflow's outcome, by ID."""
    try:
        return {
            i: _act_once(spec["action"], i, before, spec["record"], spec["version"])
            for i, before in items
        }
    finally:
        close_old_connections()  # a worker thread: give its Django connections back


def finish(record_id: int, total: int, counts: dict[str, int]) -> str:
    """Write the audit record's outcome (once: a record whose outcome is written keeps it)."""
    from console import actions
    from console.models import AuditRecord

    try:
        record = AuditRecord.objects.get(pk=record_id)
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        past = PAST[record.action.removeprefix("bulk_")]
        ok = counts.get(past, 0) == total
        actions.complete(record, actions.Outcome(ok, f"{total} workflows: {summary}"))
        return summary
    finally:
        close_old_connections()


def register(engine: Engine) -> None:
    """Declare the console's queue and register the bulk workflow on ``engine``."""
    engine.queue(QUEUE)
    chunk_step = engine.step(name=CHUNK_STEP)(act_on_chunk)
    finish_step = engine.step(name=FINISH_STEP)(finish)

    @engine.workflow(name=WORKFLOW)
    def bulk_action(ctx: Any, spec: dict[str, Any]) -> dict[str, Any]:
        items, size = spec["items"], spec["chunk"]
        counts: Counter[str] = Counter()
        for start in range(0, len(items), size):
            outcomes = chunk_step(spec, items[start : start + size])
            counts.update(outcome_kind(o) for o in outcomes.values())
            done = min(start + size, len(items))
            ctx.set_event(PROGRESS, {"done": done, "total": len(items), "counts": dict(counts)})
        finish_step(spec["record"], len(items), dict(counts))
        return {"total": len(items), "counts": dict(counts)}


# -- reading a bulk action's progress (the web process) ------------------------------------------


def progress(record_id: int) -> dict[str, Any] | None:
    """``{"done", "total", "counts", "status"}`` of a record's bulk workflow; None if none."""
    from console.models import Event, Workflow

    wid = workflow_id(record_id)
    status = Workflow.objects.filter(workflow_uuid=wid).values_list("status", flat=True).first()
    if status is None:
        return None
    event = Event.objects.filter(workflow_uuid=wid, key=PROGRESS).values("value").first()
    found = json.loads(event["value"]) if event else {"done": 0, "total": None, "counts": {}}
    return {**found, "status": status}


def first_outcomes(record_id: int, limit: int) -> list[tuple[str, str]]:
    """The first ``limit`` workflows' outcomes, from the chunk steps' checkpoints."""
    from console.models import Step

    found: list[tuple[str, str]] = []
    steps = Step.objects.filter(workflow_uuid=workflow_id(record_id), function_name=CHUNK_STEP)
    for output in steps.order_by("function_id").values_list("output", flat=True):
        try:
            found.extend(json.loads(output or "{}").items())
        except (TypeError, ValueError):
            continue
        if len(found) >= limit:
            break
    return found[:limit]


def start(client: Any, record_id: int, payload: dict[str, Any]) -> str:
    """Start the bulk workflow of ``record_id`` on the console's queue (any worker version
    runs it: every console worker registers it); its ID."""
    wid = workflow_id(record_id)
    client.start_workflow(WORKFLOW, payload, queue=QUEUE, workflow_id=wid)
    return wid
