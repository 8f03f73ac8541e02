"""Operator actions: cancel, resume, fork (one workflow or many), each through engine.Client,
each leaving an append-only audit record: its intent before it acts, its outcome after. Used by
the views and by `manage.py workflows`; bulk actions run as durable workflows (console/bulk.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import transaction

from console import dbos_actions, fork_input, sources
from console.models import AuditRecord, AuditTarget, Workflow
from engine import Client, EngineError
from engine.admission import UNCHANGED

CANCELLABLE = ("PENDING", "ENQUEUED", "DELAYED")
RESUMABLE = ("CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "ENQUEUED")
WHAT_HAPPENS = {
    "cancel": "The workflow becomes CANCELLED at once; it stops at its next step boundary "
    "(the step in progress completes, nothing after it runs).",
    "resume": "The workflow continues from its last completed step; completed steps are not "
    "run again, and its timeout counts afresh.",
    "fork": "A new workflow starts from the chosen step: the steps before it are copied from "
    "this one, not run again; this workflow is left as it is.",
    "delete": "The workflow and its steps, events and messages are deleted from the system "
    "database for good (export it first to keep a copy). Only a finished workflow can be "
    "deleted; the audit trail keeps this record.",
}
DELETABLE = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


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


@lru_cache(maxsize=8)
def source_client(url: str, schema: str) -> Client:
    """The engine client of another Waymark source (never of a DBOS one: it would migrate)."""
    return Client(url, schema=schema)


def current_client() -> Client:
    """The engine client of the Waymark source this request reads (never a DBOS one)."""
    source = sources.current()
    if source.is_dbos:
        raise RuntimeError(f"source {source.name!r} is a DBOS database: no engine client opens it")
    return client() if not source.name else source_client(source.url, source.schema)


def _where() -> str:
    """A non-default source is written on the audit record, as a filter (source=NAME)."""
    name = sources.current().name
    return f"source={name}" if name else ""


def allowed(action: str, status: str) -> bool:
    if sources.current().is_dbos and action not in dbos_actions.ACTIONS:
        return False
    return {
        "cancel": status in CANCELLABLE,
        "resume": status in RESUMABLE,
        "fork": True,
        "delete": status in DELETABLE,
    }.get(action, False)


def _statuses(ids: list[str]) -> dict[str, str]:
    found = dict(
        Workflow.objects.filter(workflow_uuid__in=ids).values_list("workflow_uuid", "status")
    )
    return {i: found.get(i, "NOT FOUND") for i in ids}


def intend(actor: Actor, action: str, ids: list[str], reason: str, query: str = "") -> AuditRecord:
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


def complete(record: AuditRecord, outcome: Outcome) -> None:
    """Write how an action went on its intent record (once)."""
    AuditRecord.objects.complete(  # type: ignore[attr-defined]
        record.pk,
        outcome=outcome.message,
        ok=outcome.ok,
        status_after=_statuses(record.workflow_ids),
    )


def one(
    action: str,
    workflow_id: str,
    step: int | None = None,
    version: str | None = None,
    *,
    new_workflow_id: str | None = None,
    input: Any = UNCHANGED,
    cancel_children: bool = False,
) -> Outcome:
    """Run one action through the engine's client, or on a DBOS source by DBOS's protocol;
    no audit (the callers write it). ``input``: a fork's new input (else it keeps the
    original's)."""
    source = sources.current()
    if source.is_dbos:
        if action not in dbos_actions.ACTIONS:
            return Outcome(False, dbos_actions.not_offered(action))
        if input is not UNCHANGED:  # refused, never silently dropped
            return Outcome(False, dbos_actions.NO_NEW_INPUT)
        ok, message, new_id = dbos_actions.act(
            source, action, workflow_id, step, version, new_workflow_id, cancel_children
        )
        return Outcome(ok, message, new_id)
    try:
        c = current_client()
        if action == "cancel":
            c.cancel_workflow(workflow_id, cancel_children=cancel_children)
            done = "cancelled, with its unfinished descendants" if cancel_children else "cancelled"
            return Outcome(True, done)
        if action == "resume":
            c.resume_workflow(workflow_id)
            return Outcome(True, "resumed")
        if action == "fork":
            handle = c.fork_workflow(
                workflow_id,
                step or 1,
                new_workflow_id=new_workflow_id,
                application_version=version or None,
                input=input,
            )
            message = f"forked into {handle.workflow_id}"
            if input is not UNCHANGED:
                message += f" with a new input: {fork_input.for_audit(input)}"
            return Outcome(True, message, handle.workflow_id)
        if action == "delete":
            c.delete_workflow(workflow_id)
            return Outcome(True, "deleted")
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
    input: Any = UNCHANGED,
    cancel_children: bool = False,
) -> Outcome:
    """Record the intent, run one action (if valid for the workflow's status now), record
    how it went. A fork's record also targets the new workflow, so it shows on both pages
    (and, with a new input, keeps that input, bounded). A cancel with ``cancel_children``
    says so in its intent (the filter column), as does the source when not the default."""
    cascade = "cancel_children=1" if action == "cancel" and cancel_children else ""
    query = "&".join(part for part in (_where(), cascade) if part)
    record = intend(actor, action, [workflow_id], reason, query)
    status = record.status_before[workflow_id]
    if status == "NOT FOUND":
        outcome = Outcome(False, f"no workflow with ID {workflow_id!r}")
    elif sources.current().is_dbos and action not in dbos_actions.ACTIONS:
        outcome = Outcome(False, dbos_actions.not_offered(action))
    elif not allowed(action, status):
        outcome = Outcome(False, f"cannot {action} a workflow that is {status}")
    else:
        outcome = one(
            action, workflow_id, step, version, input=input, cancel_children=cancel_children
        )
    if outcome.new_workflow_id:
        AuditTarget.objects.create(record=record, workflow_id=outcome.new_workflow_id)
    complete(record, outcome)
    return outcome


def export(actor: Actor, workflow_id: str, *, children: bool = False) -> tuple[Outcome, Any]:
    """Export one workflow (engine.Client.export_workflow), audited: intent, then outcome."""
    record = intend(actor, "export", [workflow_id], "", _where())
    data: Any = None
    try:
        if sources.current().is_dbos:  # the engine's export reads Waymark's tables only
            raise EngineError(dbos_actions.not_offered("export"))
        data = current_client().export_workflow(workflow_id, children=children)
        outcome = Outcome(True, f"exported {len(data['workflows'])} workflow(s)")
    except EngineError as exc:
        outcome = Outcome(False, str(exc))
    complete(record, outcome)
    return outcome, data


def import_workflow(actor: Actor, data: Any, reason: str = "") -> Outcome:
    """Import an exported workflow, audited; the outcome names the imported ID."""
    workflow_id = str(data.get("workflow_id", "")) if isinstance(data, dict) else ""
    record = intend(actor, "import", [workflow_id] if workflow_id else [], reason)
    try:
        new_id = client().import_workflow(data)
        outcome = Outcome(True, f"imported {new_id}", new_id)
    except (EngineError, ValueError, KeyError, TypeError) as exc:
        outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
    complete(record, outcome)
    return outcome


def garbage_collect(
    actor: Actor, older_than: float, keep_last: int | None, reason: str = ""
) -> Outcome:
    """Garbage-collect finished workflows (engine.Client.garbage_collect), audited."""
    record = intend(actor, "gc", [], reason or f"older_than={older_than}s keep_last={keep_last}")
    try:
        deleted = client().garbage_collect(older_than=older_than, keep_last=keep_last)
        outcome = Outcome(True, f"deleted {deleted} finished workflow(s)")
    except (EngineError, ValueError) as exc:
        outcome = Outcome(False, str(exc))
    complete(record, outcome)
    return outcome


def delete_tree(actor: Actor, workflow_id: str, reason: str = "") -> Outcome:
    """Delete a finished workflow with its descendants (all must be finished), audited."""
    record = intend(actor, "delete", [workflow_id], reason)
    try:
        client().delete_workflow(workflow_id, delete_children=True)
        outcome = Outcome(True, "deleted with its descendants")
    except EngineError as exc:
        outcome = Outcome(False, str(exc))
    complete(record, outcome)
    return outcome
