"""Operator views: confirm-then-act pages for cancel/resume/fork, bulk actions with progress,
and the audit trail (with CSV export). Permissions are checked here, in the views."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterator

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console import actions, audit_trail, filters, params
from console.http import HtmxHttpRequest, client_address
from console.models import AuditRecord, BulkJob, Step, Workflow
from console.views import bad_request

OPERATE = "console.operate_workflows"
AUDIT = "console.view_audit"
BULK_CAP = filters.COUNT_CAP  # "all matching" acts on at most this many workflows
AUDIT_PAGE = 100
PROGRESS_ROWS = 100  # a bulk progress page lists this many outcomes, then counts the rest
REASON_LIMIT = 2000
QUERY_LIMIT = 4000


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
    workflow = Workflow.objects.filter(workflow_uuid=workflow_id).first()
    if workflow is None:
        raise Http404(f"No workflow with ID {workflow_id!r}: it may have been deleted.")
    if request.method == "GET":
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
        return render(
            request,
            "console/confirm_action.html",
            {
                "workflow": workflow,
                "action": action,
                "what": actions.WHAT_HAPPENS[action],
                "allowed": actions.allowed(action, workflow.status),
                "steps": steps,
                "versions": versions,
                "default_step": request.GET.get("step", "")[:10],
            },
        )
    try:
        step = params.number(request.POST, "step", default=1) if action == "fork" else None
        reason = params.text(request.POST, "reason", REASON_LIMIT)
        version = params.text(request.POST, "version") or None
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    outcome = actions.act(
        actor_of(request), action, workflow_id, reason, step=step, version=version
    )
    level = messages.SUCCESS if outcome.ok else messages.ERROR
    messages.add_message(request, level, f"{action.capitalize()}: {outcome.message}")
    target = outcome.new_workflow_id if outcome.new_workflow_id else workflow_id
    return redirect("workflow_detail", workflow_id=target)


@require_POST
@login_required
@permission_required(OPERATE, raise_exception=True)
def bulk_action(request: HtmxHttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    if action not in ("cancel", "resume"):
        return bad_request(request, "action must be cancel or resume")
    try:
        query = params.text(request.POST, "query", QUERY_LIMIT)
        reason = params.text(request.POST, "reason", REASON_LIMIT)
        if request.POST.get("all") == "1":
            f = filters.parse(QueryDict(query))
            qs = filters.apply(Workflow.objects.all(), f, dt.datetime.now(dt.UTC))
            ids = list(
                qs.order_by("-created_at").values_list("workflow_uuid", flat=True)[:BULK_CAP]
            )
        else:
            chosen = request.POST.getlist("ids")[:BULK_CAP]
            ids = list(dict.fromkeys(params.clean(i, "ids", filters.ID_LIMIT) for i in chosen))
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    if not ids:
        return bad_request(request, "select at least one workflow (or all matching)")
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
                "what": actions.WHAT_HAPPENS[action],
                "capped": len(ids) == BULK_CAP,
            },
        )
    job = actions.bulk(actor_of(request), action, ids, reason, query)
    return redirect("bulk_progress", job_id=job.pk)


@require_GET
@login_required
@permission_required(OPERATE, raise_exception=True)
def bulk_progress(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(BulkJob, pk=job_id)
    outcomes = Counter(o.split(":")[0] for o in job.outcomes.values())
    context = {
        "job": job,
        "outcome_counts": outcomes.most_common(),
        "first": list(job.outcomes.items())[:PROGRESS_ROWS],
        "more": max(0, len(job.outcomes) - PROGRESS_ROWS),
    }
    response = render(request, "console/bulk_progress.html", context)
    if request.htmx and job.finished:
        response.status_code = 286  # done: stop polling
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
            "actions": ["cancel", "resume", "fork", "bulk_cancel", "bulk_resume"],
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
