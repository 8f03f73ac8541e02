"""Workflow pages: the list, a workflow's detail (header, timeline, steps), one step.

Thin typed views: parse and validate the query string (a bad value is a 400 page saying why),
read through the read-only models, render. Polled fragments answer 204 when nothing changed
and 286 (stop polling) once a workflow is finished.
"""

from __future__ import annotations

import datetime as dt
import time

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.http import HTMX_STOP_POLLING

from console import actions, filters, timeline
from console.http import HtmxHttpRequest
from console.models import AuditRecord, Event, Notification, Step, Workflow
from engine.records import FINAL_STATUSES

STEP_WINDOW = 100  # a long workflow shows its first and last this-many steps, then "load more"
LIST_FIELDS = (
    "workflow_uuid",
    "status",
    "name",
    "queue_name",
    "application_version",
    "executor_id",
    "created_at",
    "updated_at",
    "recovery_attempts",
    "parent_workflow_id",
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def bad_request(request: HtmxHttpRequest, reason: str) -> HttpResponse:
    return render(request, "400.html", {"reason": reason}, status=400)


def _workflow_or_404(workflow_id: str) -> Workflow:
    try:
        return Workflow.objects.get(workflow_uuid=workflow_id)
    except Workflow.DoesNotExist:
        raise Http404(f"No workflow with ID {workflow_id!r}: it may have been deleted.")


@require_GET
@login_required
def workflow_list(request: HtmxHttpRequest) -> HttpResponse:
    try:
        f = filters.parse(request.GET)
        cursor = filters.parse_cursor(request.GET.get("cursor", ""))
    except filters.BadFilterError as exc:
        return bad_request(request, str(exc))
    qs = filters.apply(Workflow.objects.only(*LIST_FIELDS), f, dt.datetime.now(dt.UTC))
    rows, next_cursor = filters.page(qs, cursor)
    fingerprint = f"{len(rows)}-{max((r.updated_at for r in rows), default=0)}"
    if request.htmx and request.GET.get("v") == fingerprint:
        return HttpResponse(status=204)  # polled and unchanged: nothing to swap
    count, capped = filters.capped_count(qs) if not request.htmx else (0, False)
    context = {
        "rows": rows,
        "filter": f,
        "next_cursor": next_cursor,
        "cursor": cursor,
        "count": count,
        "capped": capped,
        "fingerprint": fingerprint,
        "statuses": [
            s
            for s in (
                "PENDING",
                "ENQUEUED",
                "DELAYED",
                "SUCCESS",
                "ERROR",
                "CANCELLED",
                "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
            )
        ],
        "windows": list(filters.WINDOWS),
        "now": now_ms(),
    }
    template = "console/_workflow_rows.html" if request.htmx else "console/workflow_list.html"
    return render(request, template, context)


def _steps_window(workflow_id: str, start: int | None) -> tuple[list[Step], int, bool]:
    """First and last STEP_WINDOW steps (or a page from ``start``), the total, and whether
    steps were left out in the middle."""
    steps = Step.objects.filter(workflow_uuid=workflow_id)
    total = steps.count()
    if start is not None:
        return (
            list(steps.filter(function_id__gte=start).order_by("function_id")[:STEP_WINDOW]),
            total,
            False,
        )
    if total <= 2 * STEP_WINDOW:
        return list(steps.order_by("function_id")), total, False
    head = list(steps.order_by("function_id")[:STEP_WINDOW])
    tail = list(steps.order_by("-function_id")[:STEP_WINDOW])[::-1]
    return head + tail, total, True


def _detail_context(workflow: Workflow) -> dict[str, object]:
    now = now_ms()
    steps, total, gap = _steps_window(workflow.workflow_uuid, None)
    head = steps[:STEP_WINDOW] if gap else steps
    return {
        "workflow": workflow,
        "record": workflow.record,
        "steps": head,
        "tail_steps": steps[STEP_WINDOW:] if gap else [],
        "steps_total": total,
        "steps_gap": gap,
        "next_step": STEP_WINDOW + 1,
        "timeline": timeline.build(workflow, steps, now),
        "finished": workflow.status in FINAL_STATUSES,
        "now": now,
    }


@require_GET
@login_required
def workflow_detail(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    workflow = _workflow_or_404(workflow_id)
    if request.htmx and request.GET.get("fragment") == "live":
        if request.GET.get("v") == str(workflow.updated_at):
            # Unchanged since the last poll; if it is finished, stop polling too.
            finished = workflow.status in FINAL_STATUSES
            return HttpResponse(status=HTMX_STOP_POLLING if finished else 204)
        context = _detail_context(workflow)
        response = render(request, "console/_live.html", context)
        if context["finished"]:
            response.status_code = HTMX_STOP_POLLING
        return response
    context = _detail_context(workflow)
    context["children"] = list(
        Workflow.objects.filter(parent_workflow_id=workflow_id)
        .only(*LIST_FIELDS)
        .order_by("created_at")[:50]
    )
    context["events"] = list(Event.objects.filter(workflow_uuid=workflow_id).order_by("key"))
    context["waiting_messages"] = list(
        Notification.objects.filter(destination_uuid=workflow_id).order_by("seq")[:50]
    )
    context["cancellable"], context["resumable"] = actions.CANCELLABLE, actions.RESUMABLE
    user = request.user
    context["audit_records"] = (
        list(AuditRecord.objects.filter(targets__workflow_id=workflow_id)[:20])
        if user.has_perm("console.operate_workflows") or user.has_perm("console.view_audit")
        else None
    )
    return render(request, "console/workflow_detail.html", context)


@require_GET
@login_required
def workflow_steps(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    """More steps of a long workflow (the "load more" of the steps table)."""
    _workflow_or_404(workflow_id)
    try:
        start = int(request.GET.get("from", "1"))
        if start < 1:
            raise ValueError
    except ValueError:
        return bad_request(request, "from must be a step number >= 1")
    steps, total, _ = _steps_window(workflow_id, start)
    return render(
        request,
        "console/_steps_page.html",
        {
            "steps": steps,
            "workflow_id": workflow_id,
            "total": total,
            "next_step": start + STEP_WINDOW if start + STEP_WINDOW <= total else None,
        },
    )


@require_GET
@login_required
def step_detail(request: HtmxHttpRequest, workflow_id: str, step_id: int) -> HttpResponse:
    workflow = _workflow_or_404(workflow_id)
    try:
        step = Step.objects.get(workflow_uuid=workflow_id, function_id=step_id)
    except Step.DoesNotExist:
        raise Http404(f"Workflow {workflow_id!r} has no step {step_id}.")
    template = "console/_step_payload.html" if request.htmx else "console/step_detail.html"
    return render(request, template, {"workflow": workflow, "step": step, "record": step.record})
