"""Operators control queues from the queues page: pause, resume, change limits.

Each action goes through the engine's ``Client`` of the source the page reads (the settings
live in the engine's ``queue_settings``, so every worker applies them; a DBOS application's
queues are set in its code, so on a DBOS source the console refuses, audited) and is audited
like the workflow actions: the intent is recorded before the action runs, its outcome after.
The record's ``filter`` names the queue (``queue=<name>``) and the limits asked for;
``status_before`` and ``status_after`` hold the queue's state (``queue:<name>`` →
``ACTIVE``/``PAUSED`` and limits).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from console import actions, dbos_actions, params, sources
from console.http import HtmxHttpRequest
from console.models import AuditRecord
from console.now import limits_text
from console.operate import OPERATE, REASON_LIMIT, actor_of
from console.views import bad_request
from engine import EngineError, QueueInfo

ACTIONS = ("pause", "resume", "limits")
UNCHANGED: Any = object()


def state(name: str) -> dict[str, str]:
    """The queue's state for the audit record, as the engine reports it now."""
    if sources.current().is_dbos:
        return {f"queue:{name}": "a DBOS queue (set in the application's code)"}
    found: QueueInfo | None = next(
        (q for q in actions.current_client().list_queues() if q.name == name), None
    )
    if found is None:
        return {f"queue:{name}": "NOT FOUND"}
    spec = {
        "concurrency": found.concurrency,
        "worker_concurrency": found.worker_concurrency,
        "rate_limit": found.rate_limit,
    }
    text = limits_text(spec) or "no limits"
    return {f"queue:{name}": f"{'PAUSED' if found.paused else 'ACTIVE'} · {text}"}


def _concurrency(query: QueryDict, param: str) -> Any:
    """Blank: leave as it is; ``none``: no limit; else a number >= 1."""
    raw = params.text(query, param, 20)
    if not raw:
        return UNCHANGED
    if raw.lower() == "none":
        return None
    return params.number(query, param, default=0, minimum=1, maximum=1_000_000)


def _rate_limit(query: QueryDict) -> Any:
    starts = params.text(query, "rate_starts", 20)
    period = params.text(query, "rate_period", 20)
    if not starts and not period:
        return UNCHANGED
    if starts.lower() == "none":
        return None
    count = params.number(query, "rate_starts", default=0, minimum=1, maximum=1_000_000)
    try:
        seconds = float(period)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86_400 * 365:
        raise params.BadParameterError(
            f"rate_period={period[:20]!r} is not a period; give seconds > 0 (e.g. 60)"
        )
    return (count, seconds)


def limits_of(query: QueryDict) -> dict[str, Any]:
    """The limits an operator asked for (only those given); raises BadParameterError."""
    asked = {
        "concurrency": _concurrency(query, "concurrency"),
        "worker_concurrency": _concurrency(query, "worker_concurrency"),
        "rate_limit": _rate_limit(query),
    }
    changed = {k: v for k, v in asked.items() if v is not UNCHANGED}
    if not changed:
        raise params.BadParameterError(
            "give at least one limit: concurrency, worker_concurrency, or rate_starts and "
            "rate_period (a number, or none for no limit)"
        )
    return changed


def act(
    actor: actions.Actor, action: str, name: str, reason: str, limits: dict[str, Any]
) -> actions.Outcome:
    """Record the intent, act through the engine's client, record the outcome."""
    asked = urlencode(
        [("queue", name), *((k, "none" if v is None else str(v)) for k, v in limits.items())]
    )
    record = AuditRecord.objects.create(
        actor=actor.name,
        source=actor.source,
        action=f"queue_{action}",
        workflow_ids=[],
        filter=asked,
        reason=reason,
        status_before=state(name),
        client_address=actor.address,
        user_agent=actor.user_agent[:1000],
    )
    try:
        if sources.current().is_dbos:
            raise ValueError(dbos_actions.not_offered(f"queue {action}"))
        client = actions.current_client()  # the source's own queues, never the default's
        if action == "pause":
            client.pause_queue(name)
            outcome = actions.Outcome(True, f"queue {name} paused: it starts nothing new")
        elif action == "resume":
            client.resume_queue(name)
            outcome = actions.Outcome(True, f"queue {name} resumed")
        else:
            client.set_queue_limits(name, **limits)
            outcome = actions.Outcome(True, f"queue {name}: limits changed")
    except (EngineError, ValueError) as exc:
        outcome = actions.Outcome(False, str(exc))
    AuditRecord.objects.complete(  # type: ignore[attr-defined]
        record.pk, outcome=outcome.message, ok=outcome.ok, status_after=state(name)
    )
    return outcome


@require_POST
@login_required
@permission_required(OPERATE, raise_exception=True)
def queue_action(request: HtmxHttpRequest, name: str, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404(f"No queue action {action!r}.")
    try:
        params.clean(name, "queue", params.TEXT_LIMIT)
        reason = params.text(request.POST, "reason", REASON_LIMIT)
        limits = limits_of(request.POST) if action == "limits" else {}
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    outcome = act(actor_of(request), action, name, reason, limits)
    level = messages.SUCCESS if outcome.ok else messages.ERROR
    messages.add_message(request, level, f"Queue {action}: {outcome.message}")
    return redirect("queues")
