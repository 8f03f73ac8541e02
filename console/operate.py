"""Operator views: confirm-then-act pages for cancel/resume/fork, bulk actions with progress,
and the audit trail (with CSV export). Permissions are checked here, in the views."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console import actions, filters
from console.http import HtmxHttpRequest
from console.models import AuditRecord, BulkJob, Step, Workflow
from console.views import bad_request

OPERATE = "console.operate_workflows"
AUDIT = "console.view_audit"
BULK_CAP = filters.COUNT_CAP  # "all matching" acts on at most this many workflows
AUDIT_PAGE = 100


def actor_of(request: HtmxHttpRequest) -> actions.Actor:
    return actions.Actor(
        name=request.user.get_username(),
        source="console",
        address=request.META.get("REMOTE_ADDR"),
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
                "default_step": request.GET.get("step", ""),
            },
        )
    step = None
    if action == "fork":
        try:
            step = int(request.POST.get("step", "1"))
            if step < 1:
                raise ValueError
        except ValueError:
            return bad_request(request, "step must be a step number >= 1")
    outcome = actions.act(
        actor_of(request),
        action,
        workflow_id,
        request.POST.get("reason", "").strip()[:2000],
        step=step,
        version=request.POST.get("version", "").strip() or None,
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
    query = request.POST.get("query", "")
    if request.POST.get("all") == "1":
        try:
            f = filters.parse(QueryDict(query))
        except filters.BadFilterError as exc:
            return bad_request(request, str(exc))
        qs = filters.apply(Workflow.objects.all(), f, dt.datetime.now(dt.UTC))
        ids = list(qs.order_by("-created_at").values_list("workflow_uuid", flat=True)[:BULK_CAP])
    else:
        ids = list(dict.fromkeys(request.POST.getlist("ids")))[:BULK_CAP]
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
    job = actions.bulk(
        actor_of(request), action, ids, request.POST.get("reason", "").strip()[:2000], query
    )
    return redirect("bulk_progress", job_id=job.pk)


@require_GET
@login_required
@permission_required(OPERATE, raise_exception=True)
def bulk_progress(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(BulkJob, pk=job_id)
    response = render(request, "console/bulk_progress.html", {"job": job})
    if request.htmx and job.finished:
        response.status_code = 286  # done: stop polling
    return response


def _audit_filter(request: HtmxHttpRequest) -> tuple[QuerySet[AuditRecord], dict[str, str]]:
    qs = AuditRecord.objects.all()
    params = {k: request.GET.get(k, "").strip() for k in ("actor", "action", "target", "since")}
    if params["actor"]:
        qs = qs.filter(actor=params["actor"])
    if params["action"]:
        qs = qs.filter(action=params["action"])
    if params["target"]:
        qs = qs.filter(targets__workflow_id=params["target"])
    if params["since"]:
        if params["since"] not in filters.WINDOWS:
            raise filters.BadFilterError(
                f"since={params['since']!r} is not a window; use one of "
                f"{', '.join(filters.WINDOWS)}"
            )
        qs = qs.filter(at__gte=dt.datetime.now(dt.UTC) - filters.WINDOWS[params["since"]])
    return qs.distinct(), params


@require_GET
@login_required
@permission_required(AUDIT, raise_exception=True)
def audit(request: HtmxHttpRequest) -> HttpResponse:
    try:
        qs, params = _audit_filter(request)
    except filters.BadFilterError as exc:
        return bad_request(request, str(exc))
    if request.GET.get("format") == "csv":
        return _csv(qs)
    records = list(qs.prefetch_related("targets")[:AUDIT_PAGE])
    return render(
        request,
        "console/audit.html",
        {
            "records": records,
            "params": params,
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
            yield writer.writerow(
                [
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
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="waymark-audit.csv"'
    return response
