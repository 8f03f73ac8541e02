"""Operators control managed schedules from the schedules page: pause, resume, trigger,
backfill; admins delete.

Each action goes through the engine's ``Client`` of the current source (the schedules live in
the engine's ``schedules`` table, so every worker applies a change within a second) and is
audited like the workflow actions: the intent is recorded before the action runs, its outcome
after. The record's ``filter`` names the schedule (``schedule=<name>``) and a backfill's range;
``status_before`` and ``status_after`` hold the schedule's state (``schedule:<name>`` →
``ACTIVE``/``PAUSED`` and its next tick). A triggered run is a target of the record, so it shows
on that workflow's page too. A DBOS source has no managed schedules: nothing to act on.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from console import actions, params, sources
from console.http import HtmxHttpRequest
from console.models import AuditRecord, AuditTarget
from console.operate import DELETE, OPERATE, REASON_LIMIT, actor_of
from console.views import bad_request
from engine import Client, EngineError, scheduler

ACTIONS = ("pause", "resume", "trigger", "backfill", "delete")
Window = tuple[dt.datetime, dt.datetime] | None


def _client() -> Client:
    source = sources.current()
    if source.is_dbos:
        raise EngineError(
            f"source {source.name!r} is a DBOS database: it has no managed schedules to control"
        )
    return actions.client() if not source.name else actions.source_client(source.url, source.schema)


def state(name: str) -> dict[str, str]:
    """The schedule's state for the audit record, as the engine reports it now."""
    try:
        found = next((s for s in _client().list_schedules() if s.name == name), None)
    except EngineError:
        found = None
    if found is None:
        return {f"schedule:{name}": "NOT FOUND"}
    if found.paused:
        return {f"schedule:{name}": f"PAUSED · {found.cron} ({found.timezone})"}
    tick = found.next_fire_at.isoformat() if found.next_fire_at else "none"
    return {f"schedule:{name}": f"ACTIVE · {found.cron} ({found.timezone}) · next {tick}"}


def _moment(query: QueryDict, param: str, zone: dt.tzinfo) -> dt.datetime:
    raw = params.text(query, param, 40)
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise params.BadParameterError(
            f"{param}={raw[:40]!r} is not a date and time; give e.g. 2026-03-01T00:00 (read in "
            "the time zone shown, or with an offset such as +00:00)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def window_of(query: QueryDict) -> tuple[dt.datetime, dt.datetime]:
    """A backfill's [start, end), read in the page's time zone (``tz``, default UTC)."""
    try:
        zone = scheduler.zone(params.text(query, "tz", 64) or "UTC", "shown")
    except ValueError as exc:
        raise params.BadParameterError(str(exc)) from None
    return _moment(query, "start", zone), _moment(query, "end", zone)


def act(
    actor: actions.Actor,
    action: str,
    name: str,
    reason: str,
    window: Window = None,
    spec: dict[str, str] | None = None,
) -> actions.Outcome:
    """Record the intent, act through the engine's client, record the outcome. ``spec``: a
    create's ``workflow``, ``cron``, ``timezone`` and ``queue`` (the CLI's; the page makes
    none)."""
    asked = [("schedule", name), *((k, v) for k, v in (spec or {}).items() if v)]
    if window is not None:
        asked += [("start", window[0].isoformat()), ("end", window[1].isoformat())]
    if sources.current().name:
        asked.append(("source", sources.current().name))
    record = AuditRecord.objects.create(
        actor=actor.name,
        source=actor.source,
        action=f"schedule_{action}",
        workflow_ids=[],
        filter=urlencode(asked),
        reason=reason,
        status_before=state(name),
        client_address=actor.address,
        user_agent=actor.user_agent[:1000],
    )
    try:
        client = _client()
        if action == "create":
            assert spec is not None
            client.create_schedule(
                name,
                spec["workflow"],
                spec["cron"],
                timezone=spec.get("timezone") or "UTC",
                queue=spec.get("queue") or None,
            )
            outcome = actions.Outcome(True, f"schedule {name} created (or updated)")
        elif action == "pause":
            client.pause_schedule(name)
            outcome = actions.Outcome(True, f"schedule {name} paused: no worker fires its ticks")
        elif action == "resume":
            client.resume_schedule(name)
            outcome = actions.Outcome(True, f"schedule {name} resumed from its next tick")
        elif action == "trigger":
            handle = client.trigger_schedule(name)
            outcome = actions.Outcome(
                True, f"schedule {name} triggered: {handle.workflow_id}", handle.workflow_id
            )
        elif action == "backfill":
            assert window is not None
            handles = client.backfill_schedule(name, *window)
            outcome = actions.Outcome(
                True,
                f"schedule {name} backfilled: {len(handles)} ticks from "
                f"{window[0].isoformat()} to {window[1].isoformat()} (a tick that already ran "
                "is not run again)",
            )
        else:
            client.delete_schedule(name)
            outcome = actions.Outcome(True, f"schedule {name} deleted (its runs are kept)")
    except (EngineError, ValueError) as exc:
        outcome = actions.Outcome(False, str(exc))
    if outcome.new_workflow_id:
        AuditTarget.objects.create(record=record, workflow_id=outcome.new_workflow_id)
    AuditRecord.objects.complete(  # type: ignore[attr-defined]
        record.pk, outcome=outcome.message, ok=outcome.ok, status_after=state(name)
    )
    return outcome


@require_POST
@login_required
@permission_required(OPERATE, raise_exception=True)
def schedule_action(request: HtmxHttpRequest, name: str, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404(f"No schedule action {action!r}.")
    if action == "delete" and not request.user.has_perm(DELETE):
        raise PermissionDenied("deleting a schedule is for the admin role")
    try:
        params.clean(name, "schedule", params.TEXT_LIMIT)
        reason = params.text(request.POST, "reason", REASON_LIMIT)
        window = window_of(request.POST) if action == "backfill" else None
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    outcome = act(actor_of(request), action, name, reason, window)
    level = messages.SUCCESS if outcome.ok else messages.ERROR
    messages.add_message(request, level, f"Schedule {action}: {outcome.message}")
    tz = params.text(request.POST, "tz", 64)
    target = redirect("schedules")
    if tz and tz != "UTC":
        target["Location"] += "?" + urlencode({"tz": tz})
    return target
