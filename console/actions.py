"""Operator actions: cancel, resume, fork (one workflow or many), each through engine.Client,
each leaving an append-only audit record. Used by the views and by `manage.py workflows`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings
from django.db import close_old_connections, transaction

from console.models import AuditRecord, AuditTarget, BulkJob, Workflow
from engine import Client, EngineError

CANCELLABLE = ("PENDING", "ENQUEUED", "DELAYED")
RESUMABLE = ("CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "ENQUEUED")
WHAT_HAPPENS = {
    "cancel": "The workflow becomes CANCELLED at once; it stops at its next step boundary "
    "(the step in progress completes, nothing after it runs).",
    "resume": "The workflow continues from its last completed step; completed steps are not "
    "run again, and its timeout counts afresh.",
    "fork": "A new workflow starts from the chosen step: the steps before it are copied from "
    "this one, not run again; this workflow is left as it is.",
}
INLINE_BULK = 50  # bulk actions on more workflows than this run in the background


@dataclass(frozen=True)
class Actor:
    name: str
    source: str = "console"
    address: str | None = None
    user_agent: str = ""


@dataclass
class Outcome:
    ok: bool
    message: str
    new_workflow_id: str | None = None
    outcomes: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def client() -> Client:
    """The console's engine client (one per process: it holds a connection pool)."""
    return Client(settings.WAYMARK_DATABASE_URL, schema=settings.WAYMARK_SCHEMA)


def allowed(action: str, status: str) -> bool:
    return {"cancel": status in CANCELLABLE, "resume": status in RESUMABLE, "fork": True}.get(
        action, False
    )


def _statuses(ids: list[str]) -> dict[str, str]:
    found = dict(
        Workflow.objects.filter(workflow_uuid__in=ids).values_list("workflow_uuid", "status")
    )
    return {i: found.get(i, "NOT FOUND") for i in ids}


def _intend(actor: Actor, action: str, ids: list[str], reason: str, query: str = "") -> AuditRecord:
    """Record what an action sets out to do, before it does anything (its outcome comes later:
    an action cut short by a crash still leaves who meant to do what, to which workflows)."""
    with transaction.atomic():
        record = AuditRecord.objects.create(
            actor=actor.name,
            source=actor.source,
            action=action,
            workflow_ids=ids,
            filter=query,
            reason=reason,
            status_before=_statuses(ids),
            client_address=actor.address,
            user_agent=actor.user_agent[:1000],
        )
        AuditTarget.objects.bulk_create(AuditTarget(record=record, workflow_id=i) for i in ids)
    return record


def _complete(record: AuditRecord, outcome: Outcome) -> None:
    AuditRecord.objects.complete(  # type: ignore[attr-defined]
        record.pk,
        outcome=outcome.message,
        ok=outcome.ok,
        status_after=_statuses(record.workflow_ids),
    )


def _one(
    action: str, workflow_id: str, step: int | None = None, version: str | None = None
) -> Outcome:
    c = client()
    try:
        if action == "cancel":
            c.cancel_workflow(workflow_id)
            return Outcome(True, "cancelled")
        if action == "resume":
            c.resume_workflow(workflow_id)
            return Outcome(True, "resumed")
        if action == "fork":
            handle = c.fork_workflow(workflow_id, step or 1, application_version=version or None)
            return Outcome(True, f"forked into {handle.workflow_id}", handle.workflow_id)
    except (EngineError, ValueError) as exc:
        return Outcome(False, str(exc))
    return Outcome(False, f"unknown action {action!r}")


def act(
    actor: Actor,
    action: str,
    workflow_id: str,
    reason: str = "",
    *,
    step: int | None = None,
    version: str | None = None,
) -> Outcome:
    """Record the intent, run one action (if valid for the workflow's status now), record
    how it went."""
    record = _intend(actor, action, [workflow_id], reason)
    status = record.status_before[workflow_id]
    if status == "NOT FOUND":
        outcome = Outcome(False, f"no workflow with ID {workflow_id!r}")
    elif not allowed(action, status):
        outcome = Outcome(False, f"cannot {action} a workflow that is {status}")
    else:
        outcome = _one(action, workflow_id, step, version)
    _complete(record, outcome)
    return outcome


def bulk(actor: Actor, action: str, ids: list[str], reason: str, query: str = "") -> BulkJob:
    """Cancel or resume many workflows; large batches continue in a background thread.

    Each workflow is acted on only if the action is valid for it; the per-item outcomes are
    on the returned job (and its progress page); one audit record covers the batch.
    """
    if action not in ("cancel", "resume"):
        raise ValueError(f"bulk action must be cancel or resume, not {action!r}")
    record = _intend(actor, f"bulk_{action}", ids, reason, query)
    job = BulkJob.objects.create(actor=actor.name, action=action, total=len(ids), audit=record)
    before = record.status_before

    def run() -> None:
        try:
            outcomes: dict[str, str] = {}
            for n, workflow_id in enumerate(ids, 1):
                status = before[workflow_id]
                if not allowed(action, status):
                    outcomes[workflow_id] = f"skipped: {status}"
                else:
                    result = _one(action, workflow_id)
                    outcomes[workflow_id] = result.message
                if n % 25 == 0 or n == len(ids):
                    BulkJob.objects.filter(pk=job.pk).update(done=n, outcomes=outcomes)
            done = sum(1 for o in outcomes.values() if o.startswith(("cancelled", "resumed")))
            past = {"cancel": "cancelled", "resume": "resumed"}[action]
            summary = Outcome(
                done == len(ids),
                f"{done} {past}, {len(ids) - done} skipped or failed",
                outcomes=outcomes,
            )
            _complete(record, summary)
            BulkJob.objects.filter(pk=job.pk).update(finished=True)
        finally:
            close_old_connections()

    if len(ids) <= INLINE_BULK:
        run()
    else:
        threading.Thread(target=run, name=f"waymark-bulk-{job.pk}", daemon=True).start()
    job.refresh_from_db()
    return job
