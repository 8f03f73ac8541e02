"""Operator views: confirm-then-act pages for cancel/resume/fork, bulk actions with progress,
and the audit trail (with CSV export). Permissions are checked here, in the views."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from console import (
    actions,
    audit_trail,
    bulk,
    bulk_request,
    dbos_actions,
    filters,
    fork_input,
    params,
    sources,
    stats,
)
from console.http import HtmxHttpRequest, client_address
from console.models import AuditRecord, Step, Workflow
from console.views import bad_request, now_ms
from engine.admission import UNCHANGED

OPERATE = "console.operate_workflows"
AUDIT = "console.view_audit"
DELETE = "console.delete_workflows"  # the admin role
BULK_CAP = filters.COUNT_CAP  # "all matching" acts on at most this many workflows
AUDIT_PAGE = 100
PROGRESS_ROWS = 100  # a bulk progress page lists this many outcomes, then counts the rest
REASON_LIMIT = 2000
QUERY_LIMIT = 4000
BULK_WHAT = {
    "fork": "Each workflow is forked onto the chosen version from its last completed step: "
    "its recorded steps are copied, not run again, and the fork runs the rest; the originals "
    "are left as they are (cancel them afterwards if they should not run).",
}


def actor_of(request: HtmxHttpRequest) -> actions.Actor:
    return actions.Actor(
        name=request.user.get_username(),
        source="console",
        address=client_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(OPERATE, raise_exception=True)
def workflow_action(request: HtmxHttpRequest, workflow_id: str, action: str) -> HttpResponse:
    if action not in actions.WHAT_HAPPENS:
        raise Http404(f"No action {action!r}.")
    if action == "delete" and not request.user.has_perm(DELETE):
        raise PermissionDenied("deleting workflows is for the admin role")
    workflow = Workflow.objects.filter(workflow_uuid=workflow_id).first()
    if workflow is None:
        raise Http404(f"No workflow with ID {workflow_id!r}: it may have been deleted.")
    if request.method == "GET":
        return _confirm(request, workflow, action)
    try:
        step = params.number(request.POST, "step", default=1) if action == "fork" else None
        reason = params.text(request.POST, "reason", REASON_LIMIT)
        version = params.text(request.POST, "version") or None
        # On by default: cancelling a parent usually means its whole tree should stop.
        cascade = params.flag(request.POST, "cancel_children", default=True)
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    new_input: Any = UNCHANGED
    if action == "fork" and "input" in request.POST and sources.current().is_dbos:
        return bad_request(request, dbos_actions.NO_NEW_INPUT)  # nothing written
    if action == "fork" and "input" in request.POST:
        text = request.POST["input"]
        try:
            edited = fork_input.parse(text)
        except ValueError as exc:  # nothing is written: the page again, with the reason
            return _confirm(request, workflow, action, edited_text=text, error=str(exc))
        before = fork_input.original(workflow_id)
        if fork_input.changed(before, edited):
            if request.POST.get("previewed") != fork_input.fingerprint(text):
                # First the difference, then a confirmation tied to exactly this text.
                return _confirm(request, workflow, action, edited_text=text, edited=edited)
            new_input = edited
    outcome = actions.act(
        actor_of(request),
        action,
        workflow_id,
        reason,
        step=step,
        version=version,
        input=new_input,
        cancel_children=cascade and action == "cancel",
    )
    level = messages.SUCCESS if outcome.ok else messages.ERROR
    messages.add_message(request, level, f"{action.capitalize()}: {outcome.message}")
    if action == "delete" and outcome.ok:
        return redirect("workflow_list")
    target = outcome.new_workflow_id if outcome.new_workflow_id else workflow_id
    return redirect("workflow_detail", workflow_id=target)


def _confirm(
    request: HtmxHttpRequest,
    workflow: Workflow,
    action: str,
    *,
    edited_text: str | None = None,
    edited: Any = UNCHANGED,
    error: str = "",
) -> HttpResponse:
    """The confirmation page; for a fork also the input to edit, and after an edit either
    why it was refused (400) or its difference from the original, to confirm."""
    workflow_id = workflow.workflow_uuid
    steps = list(
        Step.objects.filter(workflow_uuid=workflow_id)
        .order_by("function_id")
        .values_list("function_id", "function_name")[:1000]
    )
    versions = sorted(
        v
        for v in Workflow.objects.values_list("application_version", flat=True).distinct()[:50]
        if v
    )
    source = request.POST if request.method == "POST" else request.GET
    context: dict[str, Any] = {
        "workflow": workflow,
        "action": action,
        "what": actions.WHAT_HAPPENS[action],
        "allowed": actions.allowed(action, workflow.status),
        "past": bulk.PAST.get(action, "deleted"),
        "steps": steps,
        "versions": versions,
        "default_step": source.get("step", "")[:10],
        "chosen_version": source.get("version", "")[:200],
        "reason": source.get("reason", "")[:REASON_LIMIT],
    }
    if action == "fork":
        before = fork_input.original(workflow_id)
        context["input"] = before
        context["input_text"] = edited_text if edited_text is not None else before.text
        context["input_error"] = error
        if edited is not UNCHANGED and edited_text is not None:
            context["input_diff"] = fork_input.diff(before.value, edited)
            context["previewed"] = fork_input.fingerprint(edited_text)
    return render(request, "console/confirm_action.html", context, status=400 if error else 200)


@require_GET
@login_required
@permission_required(OPERATE, raise_exception=True)
def workflow_export(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    """The workflow (with its descendants when ?children=1) as a JSON download, audited."""
    children = request.GET.get("children") == "1"
    outcome, data = actions.export(actor_of(request), workflow_id, children=children)
    if not outcome.ok:
        raise Http404(outcome.message)
    response = HttpResponse(json.dumps(data), content_type="application/json")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in workflow_id)[:100]
    response["Content-Disposition"] = f'attachment; filename="workflow-{safe}.json"'
    return response


def _bulk_ids(request: HtmxHttpRequest, query: str) -> list[str]:
    if request.POST.get("all") == "1":
        f = filters.parse(QueryDict(query))
        qs = filters.apply(Workflow.objects.all(), f, dt.datetime.now(dt.UTC))
        return list(qs.order_by("-created_at").values_list("workflow_uuid", flat=True)[:BULK_CAP])
    chosen = request.POST.getlist("ids")[:BULK_CAP]
    return list(dict.fromkeys(params.clean(i, "ids", filters.ID_LIMIT) for i in chosen))


def _live_versions() -> list[str]:
    return sorted({e.application_version for e in stats.live_executors(now_ms())})


@require_POST
@login_required
@permission_required(OPERATE, raise_exception=True)
def bulk_action(request: HtmxHttpRequest) -> HttpResponse:
    """Confirm, then start a durable bulk action (cancel, resume, or fork onto a live version
    from each workflow's last completed step) and show its progress."""
    action = request.POST.get("action", "")
    if action not in bulk.ACTIONS:
        return bad_request(request, f"action must be one of {', '.join(bulk.ACTIONS)}")
    try:
        query = params.text(request.POST, "query", QUERY_LIMIT)
        reason = params.text(request.POST, "reason", REASON_LIMIT)
        version = params.text(request.POST, "version") or None
        ids = _bulk_ids(request, query)
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    if not ids:
        return bad_request(request, "select at least one workflow (or all matching)")
    live = _live_versions()
    if action == "fork" and version not in live:
        return bad_request(
            request,
            "a bulk fork needs version= naming a version a live executor runs "
            f"(now: {', '.join(live) or 'none'})",
        )
    if request.POST.get("confirm") != "1":
        return render(
            request,
            "console/confirm_bulk.html",
            {
                "action": action,
                "ids": ids,
                "count": len(ids),
                "query": query,
                "all": request.POST.get("all") == "1",
                "what": BULK_WHAT.get(action, actions.WHAT_HAPPENS[action]),
                "capped": len(ids) == BULK_CAP,
                "version": version,
            },
        )
    record = bulk_request.request(actor_of(request), action, ids, reason, query, version=version)
    return redirect("bulk_progress", record_id=record.pk)


@require_GET
@login_required
@permission_required(OPERATE, raise_exception=True)
def bulk_progress(request: HtmxHttpRequest, record_id: int) -> HttpResponse:
    """How far a bulk action got, read from its workflow's progress event and checkpoints
    (so it survives a restart of this process and of the worker)."""
    record = get_object_or_404(AuditRecord, pk=record_id, action__startswith="bulk_")
    found = bulk.progress(record.pk)
    finished = record.completed_at is not None
    live = stats.live_executors(now_ms())
    context = {
        "record": record,
        "action": record.action.removeprefix("bulk_"),
        "total": len(record.workflow_ids),
        "progress": found,
        "finished": finished,
        "outcome_counts": sorted((found or {}).get("counts", {}).items()),
        "first": bulk.first_outcomes(record.pk, PROGRESS_ROWS),
        "served": any(bulk.QUEUE in (e.queues or "") for e in live),
        "bulk_workflow_id": bulk.workflow_id(record.pk),
    }
    context["more"] = max(0, ((found or {}).get("done") or 0) - len(context["first"]))
    response = render(request, "console/bulk_progress.html", context)
    if request.htmx and finished:
        response.status_code = HTMX_STOP_POLLING
    return response


@require_GET
@login_required
def audit_ids(request: HtmxHttpRequest, record_id: int) -> HttpResponse:
    """Every workflow ID an audit record names, one a line (a bulk record shows five)."""
    if not (request.user.has_perm(AUDIT) or request.user.has_perm(OPERATE)):
        raise PermissionDenied
    record = get_object_or_404(AuditRecord, pk=record_id)
    response = HttpResponse(
        "".join(f"{i}\n" for i in record.workflow_ids), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="audit-{record.pk}-ids.txt"'
    return response


def _audit_filter(request: HtmxHttpRequest) -> tuple[QuerySet[AuditRecord], dict[str, str]]:
    qs = AuditRecord.objects.all()
    chosen = {
        k: params.text(request.GET, k, filters.ID_LIMIT)
        for k in ("actor", "action", "target", "since")
    }
    if chosen["actor"]:
        qs = qs.filter(actor=chosen["actor"])
    if chosen["action"]:
        qs = qs.filter(action=chosen["action"])
    if chosen["target"]:
        qs = qs.filter(targets__workflow_id=chosen["target"])
    if chosen["since"]:
        if chosen["since"] not in filters.WINDOWS:
            raise filters.BadFilterError(
                f"since={chosen['since'][:40]!r} is not a window; use one of "
                f"{', '.join(filters.WINDOWS)}"
            )
        qs = qs.filter(at__gte=dt.datetime.now(dt.UTC) - filters.WINDOWS[chosen["since"]])
    return qs.distinct(), chosen


@require_GET
@login_required
@permission_required(AUDIT, raise_exception=True)
def audit(request: HtmxHttpRequest) -> HttpResponse:
    try:
        qs, chosen = _audit_filter(request)
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    if request.GET.get("format") == "csv":
        return _csv(qs)
    return render(
        request,
        "console/audit.html",
        {
            "records": audit_trail.rows(qs[:AUDIT_PAGE]),
            "params": chosen,
            "windows": list(filters.WINDOWS),
            "actions": ["cancel", "resume", "fork", "bulk_cancel", "bulk_resume", "bulk_fork"],
            "csv_url": reverse("audit") + "?" + request.GET.urlencode() + "&format=csv",
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(qs: QuerySet[AuditRecord]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    header = [
        "at",
        "actor",
        "source",
        "action",
        "workflow_ids",
        "filter",
        "reason",
        "status_before",
        "status_after",
        "outcome",
        "ok",
        "client_address",
        "user_agent",
    ]

    def rows() -> Iterator[str]:
        yield writer.writerow(header)
        for r in qs.iterator():
            cells = [
                r.at.isoformat(),
                r.actor,
                r.source,
                r.action,
                " ".join(r.workflow_ids),
                r.filter,
                r.reason,
                r.status_before,
                r.status_after,
                r.outcome,
                r.ok,
                r.client_address or "",
                r.user_agent,
            ]
            yield writer.writerow([audit_trail.csv_cell(c) for c in cells])

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="waymark-audit.csv"'
    return response
